"""All of one user's conversations, read in keyset-paged batches (for the export): every session
in the order of its id (the order they were started, for the ids chatgate makes; a client-made
id sorts by its value), each followed by its messages in order, in batches, so that a user with
100,000 messages is read in constant memory.

Sessions are paged on their id, not on `updated_at` as the session list is: an id never changes,
so a conversation that gets a new message while the export runs is neither skipped nor read
twice. Each batch takes a connection of its own from the pool and gives it back at once, so an
export that a slow client reads holds no connection while it waits. The columns are the chat
domain's own, so whatever they do on the way out (opening sealed text) applies here too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy import Row, select, tuple_

from chatgate.auth.service import User
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.schemas import HandoffState, MessageOut, SessionOut
from chatgate.chat.service import HISTORY_COLUMNS
from chatgate.core.db import Database
from chatgate.handoff.models import Handoff

SESSIONS_PER_BATCH = 100
MESSAGES_PER_BATCH = 500
# SessionOut's fields, its hand-off (an outer join) last.
SESSION_FIELDS = tuple(name for name in SessionOut.model_fields if name != "handoff")
SESSION_COLUMNS = (
    *(getattr(ChatSession, name) for name in SESSION_FIELDS),
    Handoff.status,
    Handoff.reason,
)
MESSAGE_FIELDS = tuple(MessageOut.model_fields)
# A message as the history API writes it: MessageOut's fields, ids as strings.
MessageJSON = dict[str, Any]


async def walk_conversations(
    database: Database,
    *,
    user: User,
    sessions_per_batch: int = SESSIONS_PER_BATCH,
    messages_per_batch: int = MESSAGES_PER_BATCH,
) -> AsyncIterator[SessionOut | list[MessageJSON]]:
    """Yields each of the user's sessions, then its messages oldest first in lists of at most
    `messages_per_batch`; a session without messages is followed directly by the next one."""
    after: uuid.UUID | None = None
    while True:
        sessions = await _sessions_after(database, user=user, after=after, limit=sessions_per_batch)
        if not sessions:
            return
        pending = iter(sessions)
        current: SessionOut | None = None
        cursor: tuple[uuid.UUID, uuid.UUID] | None = None
        ids = [session.id for session in sessions]
        while True:
            rows = await _messages_after(
                database, user=user, session_ids=ids, after=cursor, limit=messages_per_batch
            )
            for session_id, batch in _by_session(rows):
                while current is None or current.id != str(session_id):
                    current = _session_out(next(pending))
                    yield current
                yield batch
            if len(rows) < messages_per_batch:
                break
            cursor = (rows[-1].session_id, rows[-1].id)
        for rest in pending:  # those after the last one with messages
            yield _session_out(rest)
        if len(sessions) < sessions_per_batch:
            return
        after = sessions[-1].id


async def _sessions_after(
    database: Database, *, user: User, after: uuid.UUID | None, limit: int
) -> list[Row[Any]]:
    query = (
        select(*SESSION_COLUMNS)
        .outerjoin(Handoff, Handoff.session_id == ChatSession.id)
        .where(ChatSession.user_id == user.id)
    )
    if after is not None:
        query = query.where(ChatSession.id > after)
    query = query.order_by(ChatSession.id).limit(limit)
    async with database.session() as db:
        conn = await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return list((await conn.execute(query)).all())


async def _messages_after(
    database: Database,
    *,
    user: User,
    session_ids: list[uuid.UUID],
    after: tuple[uuid.UUID, uuid.UUID] | None,
    limit: int,
) -> list[Row[Any]]:
    query = (
        select(*HISTORY_COLUMNS)
        .join(ChatSession, ChatSession.id == Message.session_id)
        .where(Message.session_id.in_(session_ids), ChatSession.user_id == user.id)
    )
    if after is not None:
        query = query.where(tuple_(Message.session_id, Message.id) > tuple_(*after))
    query = query.order_by(Message.session_id, Message.id).limit(limit)
    async with database.session() as db:
        conn = await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return list((await conn.execute(query)).all())


def _session_out(row: Row[Any]) -> SessionOut:
    *columns, status, reason = tuple(row)
    values = dict(zip(SESSION_FIELDS, columns, strict=True))
    handoff = HandoffState(status=status, reason=reason) if status else None
    return SessionOut(**{**values, "id": str(row.id), "handoff": handoff})


def _by_session(rows: list[Row[Any]]) -> Iterator[tuple[uuid.UUID, list[MessageJSON]]]:
    """Consecutive rows of one session, as the history API's JSON objects."""
    session_id: uuid.UUID | None = None
    batch: list[MessageJSON] = []
    for row in rows:
        if row.session_id != session_id:
            if batch:
                assert session_id is not None
                yield session_id, batch
            session_id, batch = row.session_id, []
        batch.append(message_json(row))
    if batch:
        assert session_id is not None
        yield session_id, batch


def message_json(row: Row[Any]) -> MessageJSON:
    """MessageOut's JSON from a row of HISTORY_COLUMNS, without a model per message."""
    item = dict(zip(MESSAGE_FIELDS, row, strict=True))
    item["id"] = str(item["id"])
    item["session_id"] = str(item["session_id"])
    return item
