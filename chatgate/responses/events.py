"""A response as OpenAI's typed stream: `response.created`, `response.in_progress`, then each
output item opened (`output_item.added`), filled (`output_text.delta` in its content part,
`function_call_arguments.delta`) and closed (`….done`), then `response.completed` (or
`response.incomplete`, OpenAI's end for an answer cut at `max_output_tokens`); an engine failure
ends it with `response.failed`. Every event has its `sequence_number`, from 0.

Items are opened in the order the engine writes them, one at a time: a call's first piece
closes the text before it, the next call's closes the call before it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from chatgate.core.errors import AppError
from chatgate.core.tracing import current_trace_id
from chatgate.dialects.answer import AnswerSoFar
from chatgate.providers.base import Chunk, ProviderError, Usage
from chatgate.providers.messages import ToolCall, ToolCallDelta
from chatgate.responses import objects
from chatgate.responses.objects import Draft, ItemStatus, Status

log = logging.getLogger("chatgate.responses")


@dataclass(frozen=True, slots=True)
class Ending:
    """How a response ended, for the one who stores it: the object, and its answer's text and
    calls as they were given."""

    response: dict[str, Any]
    text: str
    calls: list[ToolCall]
    error: AppError | None = None


@dataclass(slots=True)
class _Item:
    index: int  # output_index
    id: str
    call: int | None = None  # the engine's index of the call, for a function_call
    call_id: str = ""
    name: str = ""
    pieces: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def body(self, status: ItemStatus) -> dict[str, Any]:
        if self.call is None:
            return objects.message_item(self.id, self.text, status)
        return objects.call_item(self.id, ToolCall(self.call_id, self.name, self.text), status)


class EventWriter:
    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        self.sequence = 0
        self.items: list[_Item] = []
        self.open: _Item | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def feed(self, chunk: Chunk) -> Iterator[bytes]:
        if chunk.text:
            if self.open is None or self.open.call is not None:
                yield from self._open_text()
            assert self.open is not None
            self.open.pieces.append(chunk.text)
            yield self.event(
                "response.output_text.delta", item_id=self.open.id,
                output_index=self.open.index, content_index=0, delta=chunk.text, logprobs=[],
            )  # fmt: skip
        for delta in chunk.tool_calls or ():
            yield from self._call_piece(delta)

    def _open_text(self) -> Iterator[bytes]:
        yield from self.close()
        item = _Item(len(self.items), self.draft.message_id if not self.items else _msg_id())
        self.items.append(item)
        self.open = item
        yield self.event(
            "response.output_item.added", output_index=item.index, item=item.body("in_progress")
        )
        part = objects.output_text("")
        yield self.event(
            "response.content_part.added", item_id=item.id, output_index=item.index,
            content_index=0, part=part,
        )  # fmt: skip

    def _call_piece(self, delta: ToolCallDelta) -> Iterator[bytes]:
        item = self.open
        if item is None or item.call != delta.index:
            item = next((i for i in self.items if i.call == delta.index), None)
        if item is None:
            yield from self.close()
            item = _Item(len(self.items), self.draft.call_id(delta.index), call=delta.index)
            item.call_id = delta.id or objects.new_item_id("call")
            item.name = delta.name or ""
            self.items.append(item)
            self.open = item
            yield self.event(
                "response.output_item.added", output_index=item.index, item=item.body("in_progress")
            )
        item.name = item.name or delta.name or ""
        if delta.arguments:
            item.pieces.append(delta.arguments)
            yield self.event(
                "response.function_call_arguments.delta", item_id=item.id,
                output_index=item.index, delta=delta.arguments,
            )  # fmt: skip

    def close(self, status: ItemStatus = "completed") -> Iterator[bytes]:
        """Closes the open item, if any."""
        item, self.open = self.open, None
        if item is None:
            return
        if item.call is None:
            yield self.event(
                "response.output_text.done", item_id=item.id, output_index=item.index,
                content_index=0, text=item.text, logprobs=[],
            )  # fmt: skip
            yield self.event(
                "response.content_part.done", item_id=item.id, output_index=item.index,
                content_index=0, part=objects.output_text(item.text),
            )  # fmt: skip
        else:
            yield self.event(
                "response.function_call_arguments.done", item_id=item.id,
                output_index=item.index, name=item.name, arguments=item.text,
            )  # fmt: skip
        yield self.event(
            "response.output_item.done", output_index=item.index, item=item.body(status)
        )

    def output(self, status: ItemStatus) -> list[dict[str, Any]]:
        return [item.body(status if item.call is None else "completed") for item in self.items]

    @property
    def text(self) -> str:
        return "".join(i.text for i in self.items if i.call is None)

    @property
    def calls(self) -> list[ToolCall]:
        return [ToolCall(i.call_id, i.name, i.text) for i in self.items if i.call is not None]


def _msg_id() -> str:
    return objects.new_item_id("msg")


async def response_events(
    first: Chunk,
    rest: AsyncIterator[Chunk],
    *,
    draft: Draft,
    provider: str,
    usage_of: Callable[[AnswerSoFar, str], Awaitable[Usage]],
    end: Callable[[Ending], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The stream of one response; `end` is given how it ended (completed, incomplete, failed,
    or cancelled when the client went away) before the last event is sent, once."""
    out = EventWriter(draft)
    answer = AnswerSoFar(provider)
    ended = False

    async def finish(status: Status, error: AppError | None = None) -> dict[str, Any]:
        nonlocal ended
        ended = True
        item_status: ItemStatus = "completed" if status == "completed" else "incomplete"
        usage = await usage_of(answer, out.text + "".join(c.arguments for c in out.calls))
        failure = None
        if error is not None:
            failure = objects.failure(error.code, error.message, error.status, current_trace_id())
        response = draft.object(
            status=status, output=out.output(item_status), usage=usage, error=failure,
            source=answer.source,
        )  # fmt: skip
        await end(Ending(response, out.text, out.calls, error))
        return response

    started = draft.object(status="in_progress", output=[])
    yield out.event("response.created", response=started)
    yield out.event("response.in_progress", response=started)
    try:
        chunk: Chunk | None = first
        while chunk is not None:
            answer.see(chunk)
            for data in out.feed(chunk):
                yield data
            chunk = await anext(rest, None)
        status = objects.finished(answer.choice(0).finish_reason)
        for data in out.close("completed" if status == "completed" else "incomplete"):
            yield data
        response = await asyncio.shield(finish(status))
        kind = "response.completed" if status == "completed" else "response.incomplete"
        yield out.event(kind, response=response)
    except Exception as exc:
        # Every stream ends with a final event, whatever went wrong.
        if not isinstance(exc, ProviderError):
            log.exception("the response stream failed")
            exc = AppError("the answer failed unexpectedly")
        response = await asyncio.shield(finish("failed", exc))
        yield out.event("response.failed", response=response)
    finally:
        try:
            await rest.aclose()  # type: ignore[attr-defined]
        finally:
            if not ended:  # the client went away: what was produced is kept
                await asyncio.shield(finish("cancelled"))
