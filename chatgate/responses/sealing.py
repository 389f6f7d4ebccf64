"""What the Responses API stored in the clear (before encryption was turned on) sealed by
`chatgate rotate-keys`, beside chat.service.seal_stored: each stored response object, and the
calls of an answer that has no text (seal_stored reaches the others through their text)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, type_coerce
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.sql import ColumnElement, select

from chatgate.chat.models import ChatSession, Message
from chatgate.core.db import Database
from chatgate.responses.models import StoredResponse
from chatgate.vault.sealed import PREFIX
from chatgate.vault.service import Vault


def _clear(column: Any) -> ColumnElement[bool]:
    raw = type_coerce(column, Text)
    return raw.is_not(None) & (raw != "") & ~raw.startswith(PREFIX)


async def seal_stored_responses(database: Database, vault: Vault, *, batch: int = 500) -> int:
    """Seals, `batch` rows a transaction, and returns the number of rows sealed. Reading and
    writing a row back through the sealed columns is what seals it."""
    queries: list[tuple[Any, str]] = [
        (
            select(StoredResponse, StoredResponse.user_id).where(_clear(StoredResponse.body)),
            "body",
        ),
        (
            select(Message, ChatSession.user_id)
            .join(ChatSession, ChatSession.id == Message.session_id)
            .where(Message.content == "", _clear(Message.tool_calls)),
            "tool_calls",
        ),
    ]
    sealed = 0
    for query, column in queries:
        while True:
            async with database.session() as db:
                rows = (await db.execute(query.limit(batch))).all()
                if not rows:
                    break
                for row, owner in rows:
                    await vault.enter(owner)
                    flag_modified(row, column)
                    await db.flush()
                await db.commit()
                sealed += len(rows)
    return sealed
