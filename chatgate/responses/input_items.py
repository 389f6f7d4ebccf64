"""`GET /v1/responses/{id}/input_items`: a stored response's input, as OpenAI's items, read back
from the messages it added to its session (each item's id is made from its message's, so a
page's `after` names an item the next page starts after)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.auth.service import User
from chatgate.chat.models import Message
from chatgate.responses.store import owned_response

Order = Literal["asc", "desc"]


async def input_items(
    db: AsyncSession,
    *,
    user: User,
    response_id: str,
    order: Order,
    limit: int,
    after: str | None,
) -> dict[str, Any]:
    """OpenAI's `list` of the response's input items, `limit` at most after `after`."""
    row = await owned_response(db, user=user, response_id=response_id)
    ids = [uuid.UUID(m) for m in row.message_ids[:-1]]  # the last one is the answer
    messages = list(
        await db.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id))
    )
    items = [item for message in messages for item in items_of(message)]
    if order == "desc":
        items.reverse()
    if after is not None:
        at = next((i for i, item in enumerate(items) if item["id"] == after), None)
        items = items[at + 1 :] if at is not None else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def items_of(message: Message) -> list[dict[str, Any]]:
    """A stored message as the input items it came from."""
    key = message.id.hex
    if message.role == "tool":
        return [
            {
                "id": f"fco_{key}",
                "type": "function_call_output",
                "call_id": message.tool_call_id,
                "output": message.content,
                "status": "completed",
            }
        ]
    items: list[dict[str, Any]] = []
    if message.content or not message.tool_calls:
        kind = "output_text" if message.role == "assistant" else "input_text"
        part: dict[str, Any] = {"type": kind, "text": message.content}
        if kind == "output_text":
            part["annotations"] = []
        items.append(
            {
                "id": f"msg_{key}",
                "type": "message",
                "role": message.role,
                "status": "completed",
                "content": [part],
            }
        )
    for index, call in enumerate(message.tool_calls or ()):
        items.append(
            {
                "id": f"fc_{key}_{index}",
                "type": "function_call",
                "call_id": call["id"],
                "name": call["name"],
                "arguments": call["arguments"],
                "status": "completed",
            }
        )
    return items
