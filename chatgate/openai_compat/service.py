"""Maps OpenAI's chat-completions dialect onto an assistant: its prompt, engine and limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from chatgate.assistants.schemas import Assistant
from chatgate.assistants.service import AssistantCatalog
from chatgate.auth.service import User
from chatgate.chat.context import MESSAGE_OVERHEAD
from chatgate.core.db import Database
from chatgate.core.errors import AppError, NotFound
from chatgate.core.tracing import current_trace_id, random_hex
from chatgate.guards.service import GuardOutcome, guard_texts
from chatgate.openai_compat.schemas import ChatCompletionRequest
from chatgate.providers.base import (
    ChatTurn,
    Chunk,
    CompletionRequest,
    Provider,
    ProviderError,
    Usage,
)
from chatgate.providers.fallback import Provenance
from chatgate.ratelimit.service import RateLimiter

log = logging.getLogger("chatgate.openai_compat")


async def assistant_for_model(catalog: AssistantCatalog, model: str) -> Assistant:
    try:
        return await catalog.get(model)
    except NotFound:
        # Unlike OpenAI's, without the name asked for: a client may have put anything there.
        raise NotFound(
            "no model has this name (GET /v1/models lists them)", code="model_not_found"
        ) from None


async def completion_request(
    body: ChatCompletionRequest, *, assistant: Assistant, provider: Provider, user: User
) -> tuple[CompletionRequest, int]:
    """The assistant's system prompt first, then the newest whole client messages that fit;
    and the tokens of that prompt."""
    turns = [
        ChatTurn("system" if m.role == "developer" else m.role, m.text()) for m in body.messages
    ]
    fixed = await provider.count_tokens_async(assistant.system_prompt) + MESSAGE_OVERHEAD
    room = assistant.max_context_tokens - assistant.max_answer_tokens - fixed
    start = room
    kept: list[ChatTurn] = []
    for turn in reversed(turns):
        cost = await provider.count_tokens_async(turn.content) + MESSAGE_OVERHEAD
        if cost > room:
            if not kept:
                raise AppError(
                    f"the last message is about {cost} tokens; model {assistant.id!r} takes at "
                    f"most {max(room, 0)}",
                    code="context_length_exceeded",
                    status=400,
                )
            break
        room -= cost
        kept.append(turn)
    kept.reverse()
    system = [ChatTurn("system", assistant.system_prompt)] if assistant.system_prompt else []
    wanted = body.max_completion_tokens or body.max_tokens or assistant.max_answer_tokens
    request = CompletionRequest(
        model=assistant.model,
        messages=[*system, *kept],
        max_tokens=min(wanted, assistant.max_answer_tokens),
        temperature=body.temperature if body.temperature is not None else assistant.temperature,
        user=user.id,
        trace_id=current_trace_id() or None,
        stream=body.stream,
    )
    return request, fixed + start - room


@dataclass(frozen=True, slots=True)
class TokenMeter:
    """The user's tokens-per-minute limit with this assistant, as the session route keeps it:
    checked before the engine is called, charged with what the call used after."""

    limiter: RateLimiter
    provider: Provider
    user: str
    assistant: str
    prompt_tokens: int

    async def admit(self) -> None:
        # The client sends the whole conversation each time: all of it is the estimate.
        await self.limiter.check_tokens(
            user=self.user, assistant=self.assistant, estimate=self.prompt_tokens
        )

    async def charge(self, usage: Usage, answer: str) -> None:
        """The usage the engine reported, or else the prompt and the answer counted here."""
        used = usage.prompt_tokens + usage.completion_tokens
        if not used:
            used = self.prompt_tokens + (self.provider.count_tokens(answer) if answer else 0)
        await self.limiter.record_tokens(user=self.user, assistant=self.assistant, tokens=used)


async def guard_completion(
    body: ChatCompletionRequest, *, assistant: Assistant, database: Database, user: User
) -> tuple[ChatCompletionRequest, GuardOutcome]:
    """The assistant's guards over every message the client sends (it holds the whole
    conversation): its system, developer and assistant messages reach the engine too, so an
    injection in any of them is judged like one in a user message. The request as the engine
    may see it, masked where the policy says."""
    outcome = await guard_texts(
        database,
        policy=assistant.guards,
        texts=[("user" if m.role == "user" else "client", m.text()) for m in body.messages],
        user_id=user.id,
        assistant_id=assistant.id,
        surface="openai",
    )
    if outcome.placeholders:
        messages = [
            m.model_copy(update={"content": text})
            for m, text in zip(body.messages, outcome.texts, strict=True)
        ]
        body = body.model_copy(update={"messages": messages})
    return body, outcome


def completion_id() -> str:
    return "chatcmpl-" + random_hex(24)


def answer_marks(source: Provenance) -> dict[str, Any]:
    """chatgate's own fields on a completion: the engine that answered (null for the
    assistant's canned answer) and whether that was a fallback."""
    return {"chatgate_fallback": source.fallback, "chatgate_provider": source.provider}


def answer_headers(source: Provenance) -> dict[str, str]:
    headers = {"X-Chatgate-Fallback": "true" if source.fallback else "false"}
    if source.provider:
        headers["X-Chatgate-Provider"] = source.provider
    return headers


async def complete(
    provider: Provider, request: CompletionRequest, *, model: str, meter: TokenMeter | None = None
) -> dict[str, Any]:
    parts: list[str] = []
    usage, finish = Usage(), "stop"
    source = Provenance(provider.id)
    async for chunk in provider.stream(request):
        source.see(chunk)
        if chunk.replace:  # the engine rewrote its answer so far (e.g. Dify's moderation)
            parts.clear()
        parts.append(chunk.text)
        usage = chunk.usage or usage
        finish = _finish_reason(chunk.finish_reason) or finish
    if meter is not None:
        await meter.charge(usage, "".join(parts))
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage.as_dict(),
        **answer_marks(source),
    }


def _finish_reason(reason: str | None) -> str | None:
    if reason in (None, "stop", "length", "content_filter"):
        return reason
    return "length" if reason in ("max_tokens", "max_output_tokens") else "stop"


async def completion_events(
    first: Chunk,
    rest: AsyncIterator[Chunk],
    *,
    model: str,
    include_usage: bool,
    source: Provenance | None = None,
    meter: TokenMeter | None = None,
) -> AsyncIterator[bytes]:
    """OpenAI's `chat.completion.chunk` stream: role, content deltas, finish, usage, [DONE]."""
    head = {
        "id": completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        **(answer_marks(source) if source else {}),
    }

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    usage, finish = Usage(), "stop"
    sent: list[str] = []
    try:
        yield event({"role": "assistant", "content": ""})
        chunk: Chunk | None = first
        while chunk is not None:
            if chunk.text:
                sent.append(chunk.text)
                yield event({"content": chunk.text})
            usage = chunk.usage or usage
            finish = _finish_reason(chunk.finish_reason) or finish
            chunk = await anext(rest, None)
        yield event({}, finish)
        if include_usage:
            yield (
                b"data: "
                + orjson.dumps({**head, "choices": [], "usage": usage.as_dict()})
                + b"\n\n"
            )
        yield b"data: [DONE]\n\n"
    except Exception as exc:
        # Every stream ends with [DONE] or an error event, whatever went wrong.
        if not isinstance(exc, ProviderError):
            log.exception("the completion stream failed")
            exc = AppError("the answer failed unexpectedly")
        error = {
            "message": exc.message,
            "type": "server_error",
            "param": None,
            "code": exc.code,
            "trace_id": current_trace_id(),
        }
        yield b"data: " + orjson.dumps({"error": error}) + b"\n\n"
    finally:
        try:
            await rest.aclose()  # type: ignore[attr-defined]
        finally:
            if meter is not None:
                # Also when the client went away: what was produced counts. Shielded, because
                # a cancelled stream is cancelled again at each await of its clean-up.
                await asyncio.shield(meter.charge(usage, "".join(sent)))
