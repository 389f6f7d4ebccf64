"""Hand-offs to a person: started, listed, answered and released, over one database session.

Plain functions that add to the caller's transaction (the caller commits, so a hand-off commits
with the messages that go with it). Nothing here knows chat's tables beyond the session id; the
chat side (`chat/handoffs.py`) stores the messages."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.audit.models import AuditEvent
from chatgate.audit.service import record_audit_event
from chatgate.core.errors import Conflict, NotFound
from chatgate.core.time import utcnow
from chatgate.handoff.models import (
    WITH_A_PERSON,
    Handoff,
    HandoffReason,
    WebhookStatus,
)

HandoffFilter = Literal["waiting", "with_agent", "all"]
# How many hand-offs one listing returns at most, oldest request first.
LIST_LIMIT = 500


class AlreadyHandedOff(Exception):
    """A person has the session already: another message or answer started its hand-off."""


def handoff_not_found() -> NotFound:
    return NotFound("this session has no hand-off to a person", code="handoff_not_found")


async def active_handoff(db: AsyncSession, session_id: uuid.UUID) -> Handoff | None:
    """The session's hand-off while a person has it (waiting or with_agent), else None."""
    handoff = await db.get(Handoff, session_id, populate_existing=True)
    return handoff if handoff is not None and handoff.status in WITH_A_PERSON else None


async def handoffs_of(
    db: AsyncSession, session_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Handoff]:
    """The hand-offs of these sessions (any status), by session id."""
    if not session_ids:
        return {}
    rows = await db.scalars(select(Handoff).where(Handoff.session_id.in_(list(session_ids))))
    return {row.session_id: row for row in rows}


async def start_handoff(
    db: AsyncSession,
    *,
    session_id: uuid.UUID,
    user_id: str,
    assistant_id: str,
    reason: HandoffReason,
    webhook_status: WebhookStatus | None,
) -> Handoff:
    """Marks the session waiting for a person (a released one's row is reused), audited;
    AlreadyHandedOff when one has it (an insert meanwhile fails as IntegrityError)."""
    now = utcnow()
    handoff = await db.get(Handoff, session_id, populate_existing=True)
    if handoff is not None and handoff.status in WITH_A_PERSON:
        raise AlreadyHandedOff
    if handoff is None:
        handoff = Handoff(session_id=session_id, user_id=user_id, assistant_id=assistant_id)
        db.add(handoff)
    handoff.assistant_id = assistant_id
    handoff.status, handoff.reason = "waiting", reason
    handoff.requested_at = handoff.updated_at = now
    handoff.agent_id = None
    handoff.webhook_status = webhook_status
    handoff.webhook_attempts, handoff.webhook_error = 0, None
    record_audit_event(
        db, action="handoff.requested", user_id=user_id, target_type="session",
        target_id=str(session_id), details={"assistant_id": assistant_id, "reason": reason},
    )  # fmt: skip
    return handoff


async def list_handoffs(db: AsyncSession, *, status: HandoffFilter) -> list[Handoff]:
    """Hand-offs oldest request first: those waiting, with an agent, or all of them (released
    ones included)."""
    query = select(Handoff)
    if status != "all":
        query = query.where(Handoff.status == status)
    query = query.order_by(Handoff.requested_at, Handoff.session_id).limit(LIST_LIMIT)
    return list(await db.scalars(query))


async def handoff_for_agent(db: AsyncSession, session_id: uuid.UUID) -> Handoff:
    """The session's hand-off that a person may answer or release: 404 without one, 409 once
    released (the assistant has the conversation again)."""
    handoff = await db.get(Handoff, session_id, with_for_update=True)
    if handoff is None:
        raise handoff_not_found()
    if handoff.status == "released":
        raise Conflict(
            "this hand-off was released: the assistant answers the session again",
            code="handoff_released",
        )
    return handoff


def mark_replied(db: AsyncSession, handoff: Handoff, *, agent_id: str) -> None:
    handoff.status, handoff.agent_id, handoff.updated_at = "with_agent", agent_id, utcnow()
    record_audit_event(
        db, action="handoff.replied", user_id=agent_id, target_type="session",
        target_id=str(handoff.session_id), details={"user_id": handoff.user_id},
    )  # fmt: skip


def release(db: AsyncSession, handoff: Handoff, *, agent_id: str) -> None:
    handoff.status, handoff.updated_at = "released", utcnow()
    handoff.agent_id = handoff.agent_id or agent_id
    record_audit_event(
        db, action="handoff.released", user_id=agent_id, target_type="session",
        target_id=str(handoff.session_id), details={"user_id": handoff.user_id},
    )  # fmt: skip


async def guard_blocks_in(db: AsyncSession, session_id: uuid.UUID) -> int:
    """How many of the session's messages a guard blocked: its `guard.blocked` audit events,
    one per request (a message that trips two guards is audited twice, with one trace id)."""
    blocked = (
        AuditEvent.action == "guard.blocked",
        AuditEvent.target_type == "session",
        AuditEvent.target_id == str(session_id),
    )
    traced = await db.scalar(select(func.count(func.distinct(AuditEvent.trace_id))).where(*blocked))
    untraced = await db.scalar(select(func.count()).where(*blocked, AuditEvent.trace_id.is_(None)))
    return int(traced or 0) + int(untraced or 0)
