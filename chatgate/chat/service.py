"""Sessions and history: plain async functions over one database session."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Text, Update, bindparam, func, select, tuple_, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from chatgate.audit.service import record_audit_event
from chatgate.auth.service import User
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.schemas import MessageOut
from chatgate.core.config import Settings
from chatgate.core.db import Database, forget_deleted
from chatgate.core.errors import BadRequest, Forbidden, NotFound, TooLarge
from chatgate.core.text import is_unicode_text
from chatgate.core.time import utcnow
from chatgate.vault.sealed import PREFIX as SEALED_PREFIX
from chatgate.vault.service import Vault

TITLE_LENGTH = 60


def session_not_found() -> NotFound:
    return NotFound("session not found", code="session_not_found")


def check_content(content: str, settings: Settings) -> None:
    """The one check every stored or sent text passes; nothing is written before it."""
    if not content.strip():
        raise BadRequest("content must not be empty or blank", code="empty_content")
    if "\x00" in content:
        # PostgreSQL text cannot hold it; refused on every backend alike.
        raise BadRequest("content must not contain NUL (U+0000) characters", code="invalid_content")
    if not is_unicode_text(content):
        raise BadRequest(
            "content must not contain lone surrogates (a \\ud800-\\udfff escape without its "
            "pair): they are not characters, and no database or engine takes them",
            code="invalid_content",
        )
    if len(content) > settings.max_content_chars:
        raise TooLarge(
            f"content is {len(content)} characters; the limit is {settings.max_content_chars}",
            code="content_too_large",
        )


async def get_owned_session(db: AsyncSession, *, user: User, session_id: uuid.UUID) -> ChatSession:
    session = await db.get(ChatSession, session_id)
    if session is None or session.user_id != user.id:
        raise session_not_found()
    return session


async def create_session(
    db: AsyncSession,
    *,
    user: User,
    assistant_id: str,
    session_id: uuid.UUID | None = None,
    title: str | None = None,
) -> tuple[ChatSession, bool]:
    """Returns the session and whether it was created; a client-made id makes this idempotent."""
    if session_id is not None and (existing := await db.get(ChatSession, session_id)):
        return _existing_session(existing, user=user), False
    now = utcnow()
    session = ChatSession(
        user_id=user.id,
        assistant_id=assistant_id,
        title=(title or "").strip(),
        created_at=now,
        updated_at=now,
        message_count=0,
    )
    if session_id is not None:
        session.id = session_id
    db.add(session)
    try:
        await db.commit()
    except IntegrityError:
        # A concurrent retry with the same client-made id inserted it first.
        await db.rollback()
        existing = await db.get(ChatSession, session_id) if session_id else None
        if existing is None:
            raise
        return _existing_session(existing, user=user), False
    return session, True


def _existing_session(existing: ChatSession, *, user: User) -> ChatSession:
    if existing.user_id != user.id:
        # Never reveal that another user's session exists: as for any id not theirs.
        raise session_not_found()
    return existing


def _encode_cursor(updated_at: datetime, session_id: uuid.UUID) -> str:
    raw = f"{updated_at.isoformat()}|{session_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        updated_at = datetime.fromisoformat(stamp)
        if updated_at.tzinfo is None:
            raise ValueError("a cursor's time has its zone")  # as every cursor issued here
        return updated_at, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "the cursor is not one this service issued", code="invalid_cursor"
        ) from None


async def list_sessions(
    db: AsyncSession, *, user: User, assistant_id: str | None, limit: int, cursor: str | None
) -> tuple[list[ChatSession], str | None]:
    query = select(ChatSession).where(ChatSession.user_id == user.id)
    if assistant_id:
        query = query.where(ChatSession.assistant_id == assistant_id)
    if cursor:
        stamp, ident = _decode_cursor(cursor)
        query = query.where(tuple_(ChatSession.updated_at, ChatSession.id) < tuple_(stamp, ident))
    query = query.order_by(ChatSession.updated_at.desc(), ChatSession.id.desc()).limit(limit + 1)
    sessions = list((await db.scalars(query)).all())
    if len(sessions) > limit:
        last = sessions[limit - 1]
        return sessions[:limit], _encode_cursor(last.updated_at, last.id)
    return sessions, None


async def rename_session(db: AsyncSession, *, session: ChatSession, title: str) -> ChatSession:
    session.title = title.strip()
    session.updated_at = utcnow()
    await db.commit()
    return session


async def delete_session(db: AsyncSession, *, user: User, session: ChatSession) -> None:
    record_audit_event(
        db,
        action="session.deleted",
        user_id=user.id,
        target_type="session",
        target_id=str(session.id),
        details={"assistant_id": session.assistant_id, "message_count": session.message_count},
    )
    await db.delete(session)
    await db.commit()
    await forget_deleted(db)


async def latest_session(db: AsyncSession, *, user: User, assistant_id: str) -> ChatSession | None:
    query = (
        select(ChatSession)
        .where(ChatSession.user_id == user.id, ChatSession.assistant_id == assistant_id)
        .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
        .limit(1)
    )
    return (await db.scalars(query)).first()


async def switch_assistant(
    db: AsyncSession, *, user: User, assistant_id: str
) -> tuple[ChatSession, bool]:
    session = await latest_session(db, user=user, assistant_id=assistant_id)
    created = session is None
    if session is None:
        now = utcnow()
        session = ChatSession(
            user_id=user.id,
            assistant_id=assistant_id,
            title="",
            created_at=now,
            updated_at=now,
            message_count=0,
        )
        db.add(session)
        await db.flush()
    record_audit_event(
        db,
        action="assistant.switched",
        user_id=user.id,
        target_type="session",
        target_id=str(session.id),
        details={"assistant_id": assistant_id, "created": created},
    )
    await db.commit()
    return session, created


# A page of history is read as plain rows, one column per MessageOut field, never as ORM objects
# (a MessageOut field that is not a Message column fails here, at import, not in a request).
HISTORY_COLUMNS = tuple(getattr(Message, name) for name in MessageOut.model_fields)
_HISTORY_PAGE = (
    select(*HISTORY_COLUMNS)
    .join(ChatSession, ChatSession.id == Message.session_id)
    .where(
        Message.session_id == bindparam("session_id"), ChatSession.user_id == bindparam("user_id")
    )
    .order_by(Message.id.desc())
    .limit(bindparam("limit"))
)
_HISTORY_PAGE_BEFORE = _HISTORY_PAGE.where(Message.id < bindparam("before"))


async def history_page(
    db: AsyncSession, *, user: User, session_id: uuid.UUID, limit: int, before: uuid.UUID | None
) -> tuple[list[Row[Any]], uuid.UUID | None]:
    """The caller's newest `limit` messages before `before`, oldest first, and the next `before`.

    The hottest read in the service costs one round trip: ownership is a join, not a query of its
    own, and the connection is in autocommit, so there is no BEGIN or ROLLBACK. Only an empty page
    loads the session, to answer 404 when it is missing or another user's.
    """
    conn = await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    params: dict[str, Any] = {"session_id": session_id, "user_id": user.id, "limit": limit + 1}
    if before is None:
        result = await conn.execute(_HISTORY_PAGE, params)
    else:
        result = await conn.execute(_HISTORY_PAGE_BEFORE, {**params, "before": before})
    rows = list(result.all())
    if not rows:
        await get_owned_session(db, user=user, session_id=session_id)
    has_more = len(rows) > limit
    page = rows[:limit]
    page.reverse()
    return page, (page[0].id if has_more else None)


async def seal_stored(database: Database, vault: Vault, *, batch: int = 500) -> int:
    """Seals, `batch` messages a transaction, what was stored in the clear (before encryption
    was turned on): message text and citations, and session titles; the number of rows sealed.
    Reading and writing a row back through the sealed columns is what seals it."""
    sealed = 0
    for model, owner_join in ((Message, True), (ChatSession, False)):
        column = Message.content if model is Message else ChatSession.title
        while True:
            async with database.session() as db:
                query = select(model, ChatSession.user_id)
                if owner_join:
                    query = query.join(ChatSession, ChatSession.id == Message.session_id)
                raw = type_coerce(column, Text)
                rows = (
                    await db.execute(
                        query.where(raw != "", ~raw.startswith(SEALED_PREFIX)).limit(batch)
                    )
                ).all()
                if not rows:
                    break
                for row, owner in rows:
                    await vault.enter(owner)
                    flag_modified(row, "content" if model is Message else "title")
                    if isinstance(row, Message):
                        for name in ("citations", "tool_calls"):
                            if getattr(row, name) is not None:
                                flag_modified(row, name)
                    await db.flush()
                await db.commit()
                sealed += len(rows)
    return sealed


async def answer_owner(database: Database, answer_id: uuid.UUID) -> str | None:
    """The user whose session holds this message; None when it is gone."""
    async with database.session() as db:
        owner: str | None = await db.scalar(
            select(ChatSession.user_id)
            .join(Message, Message.session_id == ChatSession.id)
            .where(Message.id == answer_id)
        )
    return owner


def bump_session(session_id: uuid.UUID, *, added: int, title: str | None = None) -> Update:
    values: dict[str, object] = {
        "message_count": ChatSession.message_count + added,
        "updated_at": utcnow(),
    }
    if title:
        # The title binds with the column's type, so it is sealed like the column.
        new_title = bindparam("new_title", title, type_=ChatSession.title.type)
        values["title"] = func.coalesce(func.nullif(ChatSession.title, ""), new_title)
    return update(ChatSession).where(ChatSession.id == session_id).values(**values)


def check_recorded_role(user: User, role: str) -> None:
    """A recorded system or assistant message is replayed to the engine as the assistant's own
    words or instructions: only admins and service keys (trusted back ends) may record one."""
    if role != "user" and not (user.is_admin or user.is_service):
        raise Forbidden(
            f"only admins and service keys may record {role} messages; record a user message",
            code="role_not_allowed",
        )


async def append_message(
    db: AsyncSession,
    *,
    session: ChatSession,
    role: str,
    content: str,
    token_count: int,
) -> Message:
    message = Message(
        session_id=session.id,
        role=role,
        content=content,
        status="complete",
        token_count=token_count,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    db.add(message)
    title = content.strip()[:TITLE_LENGTH] if role == "user" else None
    await db.execute(bump_session(session.id, added=1, title=title))
    await db.commit()
    return message


async def get_owned_answer(db: AsyncSession, *, user: User, message_id: uuid.UUID) -> Message:
    query = (
        select(Message)
        .join(ChatSession, ChatSession.id == Message.session_id)
        .where(
            Message.id == message_id, Message.role == "assistant", ChatSession.user_id == user.id
        )
    )
    message = (await db.scalars(query)).first()
    if message is None:
        raise NotFound("task not found", code="task_not_found")
    return message


async def streaming_answer(db: AsyncSession, *, session_id: uuid.UUID) -> Message | None:
    """The session's answer still being written, if any (by this process or a worker)."""
    query = (
        select(Message)
        .where(Message.session_id == session_id, Message.status == "streaming")
        .order_by(Message.id.desc())
        .limit(1)
    )
    return (await db.scalars(query)).first()
