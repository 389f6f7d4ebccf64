"""Stored responses and their conversations, kept as chatgate sessions: what a response continues
(`earlier_turns`), a response and its messages written in one transaction (`save_response`),
read back, and deleted with the messages it added.

A conversation may fork (two responses continuing the same one): a session then holds the
messages of both branches, and each response's conversation leaves out the messages of the
responses that are not its ancestors. Messages added by chatgate's own turns (the web page)
belong to every branch that comes after them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.auth.service import User
from chatgate.chat.context import CONTEXT_STATUSES, MAX_CONTEXT_MESSAGES
from chatgate.chat.models import ChatSession, Message, MessageStatus
from chatgate.chat.service import TITLE_LENGTH, bump_session
from chatgate.core.db import Database
from chatgate.core.errors import NotFound
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.providers.base import ChatTurn
from chatgate.providers.messages import ToolCall
from chatgate.responses.models import StoredResponse


class ResponseNotFound(NotFound):
    code = "response_not_found"

    def __init__(self, *, param: str | None = None) -> None:
        # Another user's response is as unknown as a missing one. The message does not repeat
        # the id asked for (docs/api.md, "Error codes").
        self.param = param
        if param is None:
            super().__init__("no stored response of yours has this id")
        else:
            super().__init__(
                "previous_response_id names no stored response of yours",
                code="previous_response_not_found",
            )


@dataclass(frozen=True, slots=True)
class Earlier:
    """What a response continues: its session and the turns of its conversation so far."""

    session: ChatSession
    turns: list[ChatTurn]


@dataclass(slots=True)
class StoredMessage:
    """A message to add to the session."""

    role: str
    content: str
    token_count: int
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    status: MessageStatus = "complete"
    extra: dict[str, Any] = field(default_factory=dict)  # an answer's model, usage, engine…


async def owned_response(db: AsyncSession, *, user: User, response_id: str) -> StoredResponse:
    row = await db.get(StoredResponse, response_id)
    if row is None or row.user_id != user.id:
        raise ResponseNotFound()
    return row


async def earlier_turns(db: AsyncSession, *, user: User, response_id: str) -> Earlier:
    """The conversation up to and including the caller's response `response_id`."""
    row = await db.get(StoredResponse, response_id)
    if row is None or row.user_id != user.id:
        raise ResponseNotFound(param="previous_response_id")
    session = await db.get(ChatSession, row.session_id)
    assert session is not None  # a response goes with its session (ON DELETE CASCADE)
    others = await _other_branches(db, row)
    last = uuid.UUID(row.message_ids[-1])
    query = (
        select(Message)
        .where(
            Message.session_id == session.id,
            Message.id <= last,
            Message.status.in_(CONTEXT_STATUSES),
            (Message.content != "") | Message.tool_calls.is_not(None),
            ~(Message.fallback & Message.provider.is_(None)),  # a canned "busy" answer
        )
        .order_by(Message.id.desc())
        .limit(MAX_CONTEXT_MESSAGES)
    )
    messages = [m for m in await db.scalars(query) if str(m.id) not in others]
    messages.reverse()
    return Earlier(session, [turn_of(m) for m in messages])


async def _other_branches(db: AsyncSession, row: StoredResponse) -> set[str]:
    """The messages of the session's responses that `row` does not continue."""
    links = {
        r.id: (r.previous_response_id, r.message_ids)
        for r in await db.execute(
            select(
                StoredResponse.id, StoredResponse.previous_response_id, StoredResponse.message_ids
            ).where(StoredResponse.session_id == row.session_id)
        )
    }
    ancestors: set[str] = set()
    current: str | None = row.id
    while current is not None and current in links and current not in ancestors:
        ancestors.add(current)
        current = links[current][0]
    return {m for rid, (_, ids) in links.items() if rid not in ancestors for m in ids}


def turn_of(message: Message) -> ChatTurn:
    if message.role == "tool":
        return ChatTurn("tool", message.content, tool_call_id=message.tool_call_id)
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in message.tool_calls or ())
    role = message.role if message.role in ("user", "system") else "assistant"
    return ChatTurn(role, message.content, tool_calls=calls)


async def save_response(
    database: Database,
    *,
    user: User,
    session_id: uuid.UUID,
    new_session: str | None,
    response: dict[str, Any],
    messages: list[StoredMessage],
) -> None:
    """The response, its messages and (`new_session`: its assistant) its session, at once."""
    now = utcnow()
    async with database.session() as db:
        if new_session is not None:
            db.add(
                ChatSession(
                    id=session_id, user_id=user.id, assistant_id=new_session, title="",
                    message_count=0, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            await db.flush()
        rows = [
            Message(
                id=new_id(), session_id=session_id, role=m.role, content=m.content,
                status=m.status, token_count=m.token_count, created_at=now, updated_at=now,
                tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments}
                            for c in m.tool_calls] or None,
                tool_call_id=m.tool_call_id, **m.extra,
            )
            for m in messages
        ]  # fmt: skip
        db.add_all(rows)
        title = next((m.content for m in messages if m.role == "user" and m.content.strip()), "")
        db.add(
            StoredResponse(
                id=response["id"], user_id=user.id, session_id=session_id,
                previous_response_id=response["previous_response_id"],
                message_ids=[str(r.id) for r in rows], body=response, created_at=now,
            )
        )  # fmt: skip
        await db.flush()
        await db.execute(
            bump_session(session_id, added=len(rows), title=title.strip()[:TITLE_LENGTH] or None)
        )
        await db.commit()


async def delete_response(db: AsyncSession, *, user: User, response_id: str) -> None:
    """The response and the messages it added; responses that continued it now continue the
    one it continued, so their conversations keep what came before."""
    row = await owned_response(db, user=user, response_id=response_id)
    ids = [uuid.UUID(m) for m in row.message_ids]
    gone = await db.execute(
        delete(Message).where(Message.session_id == row.session_id, Message.id.in_(ids))
    )
    removed = getattr(gone, "rowcount", 0) or 0
    await db.execute(
        update(StoredResponse)
        .where(StoredResponse.previous_response_id == row.id)
        .values(previous_response_id=row.previous_response_id)
    )
    await db.execute(
        update(ChatSession)
        .where(ChatSession.id == row.session_id)
        .values(message_count=ChatSession.message_count - removed, updated_at=utcnow())
    )
    await db.delete(row)
    await db.commit()
