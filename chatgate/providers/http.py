"""What the HTTP engines (OpenAI-compatible, Anthropic, Dify) do alike: one pooled aiohttp
session per engine for the life of the process, a POST bound by the call's deadlines, the error
status check, the read loop over the streamed body, and the response's return to the pool.

Each engine keeps only what is its own: its request body and headers, and an `HttpCall` that turns
its events into chunks and its error shapes into chatgate's errors.
"""

from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

import aiohttp
import orjson

from chatgate.core.config import ProviderConfig
from chatgate.core.tracing import traceparent_for
from chatgate.providers.base import (
    MAX_EVENT_BYTES,
    TRANSPORT_ERRORS,
    Chunk,
    CompletionRequest,
    Deadlines,
    ProviderError,
    estimate_tokens,
    read_to_end,
    transport_error,
)


@functools.lru_cache(maxsize=8192)  # hashed once per user, not on every call
def opaque_user(user: str) -> str:
    """A stable stand-in for a user id, from which the id cannot be read back: what an engine
    outside the building learns about who is asking."""
    return hashlib.sha256(b"chatgate-user:" + user.encode()).hexdigest()[:32]


class HttpCall(ABC):
    """One call's own part: whether it streams, and how the engine's answer becomes chunks."""

    def __init__(self, streams: bool) -> None:
        self.streams = streams
        # Set by `feed` once the engine's last event is read; the rest of the body is then
        # read to its end, so the connection goes back to the pool.
        self.finished = False

    @abstractmethod
    def feed(self, line: bytes) -> Chunk | list[Chunk] | None:
        """One line of the streamed body: a chunk when it completes a piece of the answer, a
        list of them when it completes several (an event holding several choices)."""
        ...

    @abstractmethod
    def whole(self, body: bytes) -> Chunk | list[Chunk]:
        """The answer of a call that does not stream, from its whole body (a list of chunks
        when it holds several choices)."""
        ...


CallT = TypeVar("CallT", bound=HttpCall)


class HttpProvider(ABC, Generic[CallT]):
    """An engine behind an HTTP API; subclasses name it and define `_call`, `_body`,
    `_auth_headers` and `_error_from_response`."""

    kind = "engine"  # how messages name it: "engine 'x' answered 500"
    honours: frozenset[str] = frozenset()  # providers/features.py's parameters it takes

    def __init__(self, config: ProviderConfig, path: str) -> None:
        self.id = config.id
        self.config = config
        self.subject = f"{self.kind} {config.id!r}"
        self._url = (config.base_url or "").rstrip("/") + path
        self._api_key = config.api_key()
        self._fixed_headers = {"Content-Type": "application/json", **self._auth_headers()}
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeouts = self.config.timeouts
        self._http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text) if text else 0

    async def count_tokens_async(self, text: str) -> int:
        return estimate_tokens(text) if text else 0  # C speed: fine on the loop

    @abstractmethod
    def _auth_headers(self) -> dict[str, str]: ...

    def _headers(self, trace_id: str | None) -> dict[str, str]:
        headers = dict(self._fixed_headers)
        if trace_id and (traceparent := traceparent_for(trace_id)):
            headers["traceparent"] = traceparent
        return headers

    @abstractmethod
    def _call(self, request: CompletionRequest) -> CallT: ...

    @abstractmethod
    def _body(self, request: CompletionRequest, call: CallT) -> dict[str, Any]: ...

    @abstractmethod
    async def _error_from_response(
        self, response: aiohttp.ClientResponse, call: CallT
    ) -> ProviderError: ...

    def _ended(self, call: CallT) -> None:
        """After the response is released, however the call ended."""

    def _last_words(self, call: CallT, error: ProviderError) -> Chunk | None:
        """A piece to yield before `error` is raised (e.g. session state to forget)."""
        return None

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        # Deadlines wrap each read inside this generator, so a timeout never fires in the
        # consumer's code between two chunks.
        assert self._http is not None, "provider not started"
        call = self._call(request)
        deadlines = Deadlines(self.config.timeouts)
        try:
            async with deadlines.limit():
                response = await self._http.post(
                    self._url,
                    data=orjson.dumps(self._body(request, call)),
                    headers=self._headers(request.trace_id),
                )
            try:
                if response.status >= 400:
                    async with deadlines.limit():
                        raise await self._error_from_response(response, call)
                if not call.streams:
                    async with deadlines.limit():
                        body = await response.read()
                    answer = call.whole(body)
                    for piece in answer if isinstance(answer, list) else (answer,):
                        yield piece
                    return
                feed, content = call.feed, response.content
                while not call.finished:
                    async with deadlines.limit():
                        line = await content.readline(max_line_length=MAX_EVENT_BYTES)
                    if not line:
                        raise ProviderError(
                            f"{self.subject} closed the stream before it was finished"
                        )
                    chunk = feed(line)
                    if chunk is None:
                        continue
                    if isinstance(chunk, list):  # an event holding several choices
                        for each in chunk:
                            yield each
                        if any(each.answers for each in chunk):
                            deadlines.text_arrived()
                        continue
                    yield chunk
                    if chunk.answers:
                        # Once text flows, silence may last between_tokens at most.
                        deadlines.text_arrived()
                await read_to_end(response)
            finally:
                response.release()  # back to the pool when read to the end, else closed
                self._ended(call)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(self.subject, exc, deadlines) from None
        except ProviderError as exc:
            if (last := self._last_words(call, exc)) is not None:
                yield last
            raise
