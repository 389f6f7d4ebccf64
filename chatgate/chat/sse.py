"""Server-sent events for one answer: message_start, citations (an assistant with knowledge
bases: the passages its engine was given; a Dify app's own come just before message_end),
delta (new text only), message_end or error.

An engine may rewrite the answer so far (Dify's output moderation): that is sent as one
`delta` with `"replace": true`, whose text replaces everything received before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from chatgate.chat.answers import TurnEnd
from chatgate.chat.schemas import MessageOut
from chatgate.chat.turns import Citations, Replacement, Turn
from chatgate.core.errors import error_body


def format_event(event_id: int, name: str, data: Any) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), orjson.dumps(data))


def message_json(end: TurnEnd) -> dict[str, Any]:
    return MessageOut.of(end.message).model_dump(mode="json")


async def answer_events(turn: Turn) -> AsyncIterator[bytes]:
    event_id = 1
    try:
        yield format_event(
            event_id,
            "message_start",
            {
                "session_id": str(turn.session_id),
                "user_message_id": str(turn.user_message.id),
                "message_id": str(turn.answer.id),
            },
        )
        citations = turn.answer.citations
        if citations is not None:
            # The passages the engine was given, before it says anything about them.
            event_id += 1
            yield format_event(event_id, "citations", {"citations": citations})
        while True:
            item = await turn.events.get()
            event_id += 1
            if isinstance(item, str):
                yield format_event(event_id, "delta", {"text": item})
                continue
            if isinstance(item, Citations):
                yield format_event(event_id, "citations", {"citations": item.items})
                continue
            if isinstance(item, Replacement):
                yield format_event(event_id, "delta", {"text": item.text, "replace": True})
                continue
            if item.error is not None:
                body = error_body(item.error.code, item.error.message)
                yield format_event(event_id, "error", {**body, "message": message_json(item)})
            else:
                usage = item.message.usage or {}
                yield format_event(
                    event_id, "message_end", {"message": message_json(item), "usage": usage}
                )
            return
    finally:
        # The client went away (or the response failed): end the answer, keeping its text.
        turn.stop("client_disconnected")
