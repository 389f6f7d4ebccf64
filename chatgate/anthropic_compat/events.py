"""An engine's answer as Anthropic's stream of events: `message_start`; per content block a
`content_block_start`, its deltas (`text_delta`, or `input_json_delta` for a tool call's input)
and a `content_block_stop`; `message_delta` with the stop reason and usage; `message_stop`.
A failure after the first event is an `error` event: every stream ends with `message_stop` or
`error`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from chatgate.anthropic_compat.errors import app_error_body
from chatgate.anthropic_compat.service import message_id, stop_reason, tool_use_id, usage_of
from chatgate.core.errors import AppError
from chatgate.dialects.answer import AnswerSoFar
from chatgate.dialects.call import EngineCall
from chatgate.dialects.marks import answer_marks, citation_marks
from chatgate.providers.base import Chunk, ProviderError
from chatgate.providers.messages import ToolCallDelta

log = logging.getLogger("chatgate.anthropic_compat")


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class Blocks:
    """The answer's content blocks as they stream, numbered from 0 in the order they start, one
    open at a time: text opens a text block, a new tool call a tool_use block, and either
    closes the block before it."""

    def __init__(self) -> None:
        self.count = 0
        self.open: int | None = None
        self.open_is_text = False
        self.calls: dict[int, int] = {}  # the engine's call index -> its block

    def add(self, chunk: Chunk) -> Iterator[bytes]:
        if chunk.text:
            if self.open is None or not self.open_is_text:
                yield from self._start({"type": "text", "text": ""}, is_text=True)
            delta = {"type": "text_delta", "text": chunk.text}
            yield event("content_block_delta", {"index": self.open, "delta": delta})
        for piece in chunk.tool_calls or ():
            yield from self._call(piece)

    def _call(self, piece: ToolCallDelta) -> Iterator[bytes]:
        block = self.calls.get(piece.index)
        if block is None:
            start = {
                "type": "tool_use",
                "id": piece.id or tool_use_id(),
                "name": piece.name or "",
                "input": {},
            }
            yield from self._start(start, is_text=False)
            block = self.calls[piece.index] = self.count - 1
        if piece.arguments:
            # Engines stream one call's arguments after another's, so this is the open block;
            # a late piece of an earlier call still names its own block, which the SDK's
            # accumulator follows.
            delta = {"type": "input_json_delta", "partial_json": piece.arguments}
            yield event("content_block_delta", {"index": block, "delta": delta})

    def _start(self, block: dict[str, Any], *, is_text: bool) -> Iterator[bytes]:
        yield from self.close()
        self.open, self.open_is_text = self.count, is_text
        self.count += 1
        yield event("content_block_start", {"index": self.open, "content_block": block})

    def close(self) -> Iterator[bytes]:
        if self.open is not None:
            yield event("content_block_stop", {"index": self.open})
            self.open = None


async def message_events(
    first: Chunk, rest: AsyncIterator[Chunk], *, call: EngineCall, model: str
) -> AsyncIterator[bytes]:
    """Anthropic's event stream of an answer whose first chunk has already come."""
    answer = AnswerSoFar(call.provider.id)
    answer.see(first)
    start = {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        # The prompt as counted for the token limit; message_delta has the engine's own count.
        "usage": {"input_tokens": call.meter.prompt_tokens, "output_tokens": 0},
        **answer_marks(answer.source),
        **citation_marks(call),
    }
    try:
        yield event("message_start", {"message": start})
        blocks = Blocks()
        chunk: Chunk | None = first
        while chunk is not None:
            for piece in blocks.add(chunk):
                yield piece
            chunk = await anext(rest, None)
            if chunk is not None:
                answer.see(chunk)
        for piece in blocks.close():
            yield piece
        choice = answer.choice(0)
        reason = stop_reason(choice.finish_reason, has_calls=bool(choice.calls))
        delta = {"stop_reason": reason, "stop_sequence": None}
        yield event("message_delta", {"delta": delta, "usage": await usage_of(answer, call)})
        yield event("message_stop", {})
    except Exception as exc:
        # Every stream ends with message_stop or an error event, whatever went wrong.
        if not isinstance(exc, ProviderError):
            log.exception("the message stream failed")
            exc = AppError("the answer failed unexpectedly")
        yield event("error", app_error_body(exc))
    finally:
        try:
            await rest.aclose()  # type: ignore[attr-defined]
        finally:
            # Also when the client went away: what was produced counts. Shielded, because
            # a cancelled stream is cancelled again at each await of its clean-up.
            await asyncio.shield(call.meter.charge(answer.usage, answer.text))
