"""An engine's answer in OpenAI's chat-completions shapes: a `chat.completion`, or a stream of
`chat.completion.chunk` events ending with `[DONE]`, tool calls and logprobs included."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from chatgate.core.errors import AppError
from chatgate.core.tracing import current_trace_id, random_hex
from chatgate.dialects.answer import AnswerSoFar, Choice, openai_finish_reason
from chatgate.dialects.call import EngineCall
from chatgate.dialects.marks import answer_marks, citation_marks
from chatgate.dialects.stream import whole_answer
from chatgate.providers.base import Chunk, ProviderError

log = logging.getLogger("chatgate.openai_compat")


def completion_id() -> str:
    return "chatcmpl-" + random_hex(24)


def _message(choice: Choice) -> dict[str, Any]:
    calls = choice.tool_calls
    message: dict[str, Any] = {"role": "assistant", "content": choice.text or None}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    else:
        message["content"] = choice.text
    return message


async def complete(call: EngineCall, *, model: str) -> dict[str, Any]:
    answer = await whole_answer(call)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": choice.index,
                "message": _message(choice),
                "logprobs": {"content": choice.logprobs} if choice.logprobs else None,
                "finish_reason": openai_finish_reason(
                    choice.finish_reason, has_calls=bool(choice.calls)
                ),
            }
            for choice in answer.sorted_choices(call.request.n)
        ],
        "usage": answer.usage.as_dict(),
        **answer_marks(answer.source),
        **citation_marks(call),
    }


def _delta_calls(chunk: Chunk) -> list[dict[str, Any]]:
    """OpenAI's `delta.tool_calls`: the first piece of a call names it, the rest add arguments."""
    calls = []
    for delta in chunk.tool_calls or ():
        item: dict[str, Any] = {"index": delta.index}
        if delta.id:
            item["id"], item["type"] = delta.id, "function"
        function: dict[str, Any] = {"arguments": delta.arguments}
        if delta.name:
            function["name"] = delta.name
        item["function"] = function
        calls.append(item)
    return calls


async def completion_events(
    first: Chunk,
    rest: AsyncIterator[Chunk],
    *,
    call: EngineCall,
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """OpenAI's `chat.completion.chunk` stream: per choice its role, content and tool-call
    deltas and its finish; then the usage when asked; then [DONE]."""
    answer = AnswerSoFar(call.provider.id)
    answer.see(first)
    head = {
        "id": completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        **answer_marks(answer.source),
    }

    def event(index: int, delta: dict[str, Any], top: Any = None, **more: Any) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None, **more}
        return b"data: " + orjson.dumps({**head, **(top or {}), "choices": [choice]}) + b"\n\n"

    try:
        begun: set[int] = set()
        chunk: Chunk | None = first
        while chunk is not None:
            index = chunk.choice
            if index not in begun:
                begun.add(index)
                # The citations come once, with the first choice's first piece.
                marks = citation_marks(call) if index == 0 else {}
                yield event(index, {"role": "assistant", "content": ""}, marks)
            if chunk.text or chunk.tool_calls or chunk.logprobs:
                delta: dict[str, Any] = {"content": chunk.text} if chunk.text else {}
                if chunk.tool_calls:
                    delta["tool_calls"] = _delta_calls(chunk)
                logprobs = {"content": chunk.logprobs} if chunk.logprobs else None
                yield event(index, delta, logprobs=logprobs)
            chunk = await anext(rest, None)
            if chunk is not None:
                answer.see(chunk)
        for choice in answer.sorted_choices(call.request.n):
            if choice.index not in begun:
                yield event(choice.index, {"role": "assistant", "content": ""})
            reason = openai_finish_reason(choice.finish_reason, has_calls=bool(choice.calls))
            yield event(choice.index, {}, finish_reason=reason)
        if include_usage:
            usage = {**head, "choices": [], "usage": answer.usage.as_dict()}
            yield b"data: " + orjson.dumps(usage) + b"\n\n"
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
            # Also when the client went away: what was produced counts. Shielded, because
            # a cancelled stream is cancelled again at each await of its clean-up.
            await asyncio.shield(call.meter.charge(answer.usage, answer.text))
