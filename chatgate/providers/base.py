"""One provider interface with one streaming call shape, whatever the engine behind it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from chatgate.core.engine_config import Timeouts
from chatgate.core.errors import AppError
from chatgate.providers.messages import ContentPart, Tool, ToolCall, ToolCallDelta

log = logging.getLogger("chatgate.providers")

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    # All the turn's text (what is counted, guarded and cached); `parts` when it is more.
    content: str
    # The turn's content in order when it holds more than text (images, audio); else empty.
    parts: tuple[ContentPart, ...] = ()
    # An assistant turn's calls of tools; a tool turn answers the call `tool_call_id`.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    messages: list[ChatTurn]
    max_tokens: int
    temperature: float | None = None
    user: str | None = None
    trace_id: str | None = None
    # False when the caller wants the whole answer at once: engines that can answer in one
    # piece do so, the others stream anyway.
    stream: bool = True
    # What this engine keeps about the session between turns (e.g. Dify's conversation_id).
    session_state: dict[str, str] = field(default_factory=dict)
    # The assistant asked for, so usage can be metered against its token budget.
    assistant_id: str | None = None
    # The caller's values for a Dify app's input variables; other engines have no such thing.
    inputs: dict[str, Any] = field(default_factory=dict)
    # What a client dialect may ask beyond text (providers/features.py): an engine honours
    # each, or the request is refused by name before it is called.
    tools: tuple[Tool, ...] = ()
    tool_choice: str | dict[str, Any] | None = None  # OpenAI's: auto, none, required, a function
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None  # OpenAI's json_object or json_schema
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    n: int = 1
    # Whom and what the usage ledger (chatgate/usage/) charges the call to: the caller's API
    # key, and the route asked ("chat", "chat_completions", "responses", "messages", "qa",
    # "embeddings", "try").
    key_id: str | None = None
    route: str | None = None
    # Set by a fallback chain on what it sends an engine after the first (the ledger says so).
    fallback: bool = False


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


@dataclass(slots=True)
class Chunk:
    """A piece of an answer: new text only, and the usage/finish reason on the last one."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    # New per-session engine state to store on the session (merged into what is there).
    session_state: dict[str, str] | None = None
    # The text replaces the whole answer so far instead of adding to it (Dify's message_replace,
    # sent when the app's output moderation rewrites an answer).
    replace: bool = False
    # Set by an assistant's fallback chain: the engine that produced this piece (None for the
    # canned answer), and whether the answer comes from anything but the assistant's own engine.
    provider: str | None = None
    fallback: bool = False
    # The engine's own citations (a Dify app's retriever resources), as API.md's `Citation`s.
    citations: list[dict[str, Any]] | None = None
    # Pieces of the tool calls the model makes (finish_reason "tool_calls" at the end).
    tool_calls: list[ToolCallDelta] | None = None
    # OpenAI's `logprobs.content` entries for this piece's tokens, as the engine gave them.
    logprobs: list[dict[str, Any]] | None = None
    # Which of the request's `n` choices this piece belongs to.
    choice: int = 0

    @property
    def answers(self) -> bool:
        """Whether this piece is part of the answer itself (text or a tool call), after which
        an engine is committed: no retry, no fallback."""
        return bool(self.text or self.replace or self.tool_calls)


class Provider(Protocol):
    id: str
    # The parameters of providers/features.py this engine honours.
    honours: frozenset[str]

    def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        """Yields the answer as it is produced; raises ProviderError subclasses on failure."""
        ...

    def count_tokens(self, text: str) -> int: ...

    async def count_tokens_async(self, text: str) -> int:
        """`count_tokens` that never holds the event loop long, whatever the text's length
        (the bundled engine's exact count tokenises in a thread)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class WrappedProvider:
    """An engine with something around its stream (retries, a breaker, metrics, restored
    placeholders). Everything else is the engine's own, its id included, so per-session engine
    state and metrics stay the engine's. Subclasses define `stream`."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.id = inner.id
        self.honours = inner.honours

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def count_tokens_async(self, text: str) -> int:
        return await self.inner.count_tokens_async(text)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()


class ProviderError(AppError):
    status, code = 502, "upstream_error"


class ProviderUnavailable(ProviderError):
    status, code = 503, "upstream_unavailable"


class ProviderTimeout(ProviderError):
    status, code = 504, "upstream_timeout"


class ProviderRateLimited(ProviderError):
    status, code = 429, "upstream_rate_limited"


class EngineBusy(ProviderError):
    status, code = 503, "engine_busy"


class Deadlines:
    """The deadlines of one HTTP engine call: the first text, then each next text, all within
    the total. Each read is wrapped in `limit()`, inside the engine's generator, so a timeout
    never fires in the consumer's code between two chunks."""

    def __init__(self, timeouts: Timeouts) -> None:
        self._loop = asyncio.get_running_loop()
        self._between = timeouts.between_tokens
        now = self._loop.time()
        self._final = now + timeouts.total
        self._next = min(now + timeouts.first_token, self._final)
        self.flowing = False

    def limit(self) -> asyncio.Timeout:
        return asyncio.timeout_at(self._next)

    def text_arrived(self) -> None:
        self.flowing = True
        self._next = min(self._loop.time() + self._between, self._final)

    def error(self, subject: str) -> ProviderTimeout:
        """Which limit ran out: no first text, silence mid-answer, or the total time."""
        if not self.flowing:
            return ProviderTimeout(f"{subject} did not answer in time")
        if self._loop.time() >= self._final:
            return ProviderTimeout(f"{subject} did not finish its answer in the total time allowed")
        return ProviderTimeout(f"{subject} went silent mid-answer")


# The longest event line an HTTP engine may send (Dify's message_end carries retrieval results).
MAX_EVENT_BYTES = 8 * 1024 * 1024
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, LineTooLong, ValueError)


def transport_error(subject: str, exc: BaseException, deadlines: Deadlines) -> ProviderError:
    """What went wrong talking to an HTTP engine, as chatgate's error (`subject` names it).

    The message reaches the client, so it never carries what aiohttp says about the failure
    (the engine's host, port or URL): that detail goes to the log only.
    """
    if isinstance(exc, TimeoutError):
        return deadlines.error(subject)
    if isinstance(exc, aiohttp.ClientConnectorError):
        log.warning("%s could not be reached: %s", subject, exc)
        return ProviderUnavailable(f"{subject} could not be reached")
    if isinstance(exc, aiohttp.ClientError):
        log.warning("%s connection failed: %r", subject, exc)
        return ProviderError(f"{subject} connection failed ({type(exc).__name__})")
    if isinstance(exc, LineTooLong):
        return ProviderError(f"{subject} sent an event longer than {MAX_EVENT_BYTES} bytes")
    return ProviderError(f"{subject} sent an event that is not JSON")


def estimate_tokens(text: str) -> int:
    """A conservative count for engines whose tokenizer is not bundled.

    Other text is about four characters a token, CJK about one a character; a CJK character is
    three bytes of UTF-8, so (bytes - characters) / 2 counts those at C speed. Rounds up so a
    context built from it stays inside the engine's window.
    """
    extra = len(text.encode("utf-8")) - len(text)
    return (extra + 1) // 2 + (len(text) + 3) // 4 + 1


REUSE_WAIT = 0.05  # seconds to wait for the rest of a finished answer's body


async def read_to_end(response: aiohttp.ClientResponse) -> None:
    """Reads what is left of a body whose answer is complete (the chunked encoding's last
    chunk often comes just after `[DONE]`), so that releasing the response returns its
    connection to the pool instead of closing it; gives up after REUSE_WAIT."""
    if response.content.is_eof():
        return
    try:
        async with asyncio.timeout(REUSE_WAIT):
            while await response.content.readany():
                pass
    except TRANSPORT_ERRORS:
        pass  # the connection is closed on release: nothing lost
