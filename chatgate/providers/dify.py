"""A Dify app through Dify's Service API: `chat-messages` or `completion-messages`, blocking or
streaming.

A Dify chat app keeps its own conversation memory, so a turn sends only the new query with the
`conversation_id` kept on the chatgate session; the history chatgate holds and the assistant's
system prompt are not sent (the app's own prompt applies). Dify learns who is asking from
`user`, which is the chatgate user, and a stop names the same user.

`response_mode` follows the provider's `stream` setting only, never the caller's wish for one
piece: Dify's agent apps cannot answer blocking, and a blocking answer cannot be stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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
    ProviderRateLimited,
    ProviderUnavailable,
    Usage,
    estimate_tokens,
    read_to_end,
    transport_error,
)

log = logging.getLogger("chatgate.providers.dify")

STOP_TIMEOUT = 5.0
ANONYMOUS_USER = "chatgate"

# Dify's error codes (published for chat-messages and completion-messages) -> chatgate's.
_ERROR_CODES: dict[str, tuple[type[ProviderError], str]] = {
    "invalid_param": (ProviderError, "upstream_rejected"),
    "app_unavailable": (ProviderUnavailable, "upstream_app_unavailable"),
    "provider_not_initialize": (ProviderUnavailable, "upstream_not_configured"),
    "provider_quota_exceeded": (ProviderUnavailable, "upstream_quota_exceeded"),
    "model_currently_not_support": (ProviderUnavailable, "upstream_model_unavailable"),
    "completion_request_error": (ProviderError, "upstream_error"),
    "unauthorized": (ProviderError, "upstream_auth_failed"),
}


class ConversationLost(ProviderError):
    """The app no longer has the session's conversation; the next turn starts a new one."""

    status, code = 502, "upstream_conversation_lost"


@dataclass(slots=True)
class _Run:
    """What one call has learnt from Dify so far."""

    user: str
    conversation_id: str
    task_id: str | None = None
    finished: bool = False


class DifyProvider:
    def __init__(self, config: ProviderConfig) -> None:
        self.id = config.id
        self.config = config
        self._is_chat = config.dify_app_type == "chat"
        self._endpoint = (config.base_url or "").rstrip("/") + (
            "/chat-messages" if self._is_chat else "/completion-messages"
        )
        self._api_key = config.api_key()
        self._http: aiohttp.ClientSession | None = None
        # Stop requests still on their way; kept so they are neither collected nor cut short.
        self._stops: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        timeouts = self.config.timeouts
        self._http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
        )

    async def close(self) -> None:
        if self._stops:
            await asyncio.wait(self._stops, timeout=STOP_TIMEOUT)
        if self._http is not None:
            await self._http.close()

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text) if text else 0

    def _headers(self, trace_id: str | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if trace_id and (traceparent := traceparent_for(trace_id)):
            headers["traceparent"] = traceparent
        return headers

    def _body(self, request: CompletionRequest, run: _Run) -> dict[str, Any]:
        query = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        body: dict[str, Any] = {
            "inputs": {},
            "query": query,
            "response_mode": "streaming" if self.config.stream else "blocking",
            "user": run.user,
        }
        if self._is_chat:
            body["conversation_id"] = run.conversation_id
        else:
            # A completion app takes its text as the `query` input variable.
            body["inputs"] = {"query": query}
        return body

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        assert self._http is not None, "provider not started"
        run = _Run(
            user=request.user or ANONYMOUS_USER,
            conversation_id=request.session_state.get("conversation_id", "")
            if self._is_chat
            else "",
        )
        deadlines = Deadlines(self.config.timeouts)
        try:
            async with deadlines.limit():
                response = await self._http.post(
                    self._endpoint,
                    data=orjson.dumps(self._body(request, run)),
                    headers=self._headers(request.trace_id),
                )
            try:
                if response.status >= 400:
                    async with deadlines.limit():
                        raise await self._error_from_response(response, run)
                if not self.config.stream:
                    async with deadlines.limit():
                        body = await response.read()
                    yield self._chunk_from_answer(_json_object(body), run)
                    return
                while not run.finished:
                    async with deadlines.limit():
                        line = await response.content.readline(max_line_length=MAX_EVENT_BYTES)
                    if not line:
                        raise ProviderError(
                            f"Dify app {self.id!r} closed the stream before it was finished"
                        )
                    chunk = self._chunk_from_line(line, run)
                    if chunk is not None:
                        yield chunk
                        if chunk.text or chunk.replace:
                            # Once text flows, silence may last between_tokens at most.
                            deadlines.text_arrived()
                await read_to_end(response)
            finally:
                response.release()  # back to the pool when read to the end, else closed
                if run.task_id and not run.finished:
                    # Stopped, timed out or cut off: the app would go on generating (and
                    # billing) an answer nobody reads.
                    self._stop_later(run)
        except ConversationLost:
            yield Chunk(session_state={"conversation_id": ""})
            raise
        except TRANSPORT_ERRORS as exc:
            raise transport_error(f"Dify app {self.id!r}", exc, deadlines) from None

    def _learn(self, event: dict[str, Any], run: _Run, chunk: Chunk) -> None:
        """Notes the task id (for a stop) and a new conversation id (to keep on the session)."""
        run.task_id = event.get("task_id") or run.task_id
        conversation_id = event.get("conversation_id")
        if self._is_chat and conversation_id and conversation_id != run.conversation_id:
            run.conversation_id = conversation_id
            chunk.session_state = {"conversation_id": conversation_id}

    def _chunk_from_line(self, line: bytes, run: _Run) -> Chunk | None:
        line = line.strip()
        # Blank separators and Dify's own `event: ping` keep-alive lines carry nothing.
        if not line.startswith(b"data:"):
            return None
        event = _json_object(line[5:])
        chunk = Chunk()
        self._learn(event, run, chunk)
        kind = event.get("event")
        if kind in ("message", "agent_message"):
            chunk.text = event.get("answer") or ""
        elif kind == "message_replace":
            chunk.text, chunk.replace = event.get("answer") or "", True
        elif kind == "message_end":
            run.finished = True
            chunk.usage = _usage(event.get("metadata"))
            chunk.finish_reason = "stop"
        elif kind == "error":
            run.finished = True
            raise self._error(
                int(event.get("status") or 500),
                str(event.get("code") or ""),
                str(event.get("message") or ""),
                run,
            )
        # ping, workflow_*, node_*, agent_thought, message_file, tts_*: no answer text.
        if chunk.text or chunk.replace or chunk.usage or chunk.session_state:
            return chunk
        return None

    def _chunk_from_answer(self, body: dict[str, Any], run: _Run) -> Chunk:
        chunk = Chunk(
            text=body.get("answer") or "", usage=_usage(body.get("metadata")), finish_reason="stop"
        )
        self._learn(body, run, chunk)
        run.finished = True
        return chunk

    async def _error_from_response(
        self, response: aiohttp.ClientResponse, run: _Run
    ) -> ProviderError:
        try:
            body = orjson.loads(await response.read())
            code, message = str(body.get("code") or ""), str(body.get("message") or "")
        except (orjson.JSONDecodeError, AttributeError):
            code, message = "", ""
        return self._error(
            response.status, code, message, run, retry_after=response.headers.get("Retry-After")
        )

    def _error(
        self, status: int, code: str, message: str, run: _Run, retry_after: str | None = None
    ) -> ProviderError:
        text = f"Dify app {self.id!r} answered {status}" + (f" {code}" if code else "")
        text += f": {message}" if message else ""
        lost = code == "conversation_completed" or (
            status == 404 and "conversation" in message.lower()
        )
        if lost and run.conversation_id:
            return ConversationLost(
                f"Dify app {self.id!r} no longer has this session's conversation ({message}); "
                "the next message starts a new one"
            )
        if status == 429:
            return ProviderRateLimited(text, headers={"Retry-After": retry_after or "1"})
        if code in _ERROR_CODES:
            kind, our_code = _ERROR_CODES[code]
            return kind(text, code=our_code)
        if status in (401, 403):
            return ProviderError(text, code="upstream_auth_failed")
        if status == 503:
            return ProviderUnavailable(text)
        if status >= 500:
            return ProviderError(text)
        return ProviderError(text, code="upstream_rejected")

    def _stop_later(self, run: _Run) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._stop(run))
        except RuntimeError:  # no loop left (the process is ending): nothing can be sent
            return
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    async def _stop(self, run: _Run) -> None:
        assert self._http is not None and run.task_id
        url = f"{self._endpoint}/{quote(run.task_id, safe='')}/stop"
        try:
            async with (
                asyncio.timeout(STOP_TIMEOUT),
                self._http.post(
                    url, data=orjson.dumps({"user": run.user}), headers=self._headers()
                ) as response,
            ):
                if response.status >= 400:
                    log.warning(
                        "Dify app %r refused to stop task %s: %s",
                        self.id,
                        run.task_id,
                        response.status,
                    )
        except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
            log.warning("could not stop task %s of Dify app %r: %r", run.task_id, self.id, exc)


def _usage(metadata: Any) -> Usage | None:
    usage = (metadata or {}).get("usage") if isinstance(metadata, dict) else None
    if not usage:
        return None
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _json_object(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
