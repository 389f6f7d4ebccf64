from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.audit.models import AuditEvent
from chatgate.core.tracing import current_trace_id


def record_audit_event(
    db: AsyncSession,
    *,
    action: str,
    user_id: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Adds the event to the caller's transaction, so it commits (or not) with the change."""
    event = AuditEvent(
        action=action,
        user_id=user_id,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        trace_id=current_trace_id() or None,
    )
    db.add(event)
    return event


async def list_audit_events(
    db: AsyncSession,
    *,
    action: str | None,
    user_id: str | None,
    since: datetime | None,
    limit: int,
    cursor: uuid.UUID | None,
) -> tuple[list[AuditEvent], uuid.UUID | None]:
    """Newest first, keyset-paged on the time-ordered id."""
    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if user_id:
        query = query.where(AuditEvent.user_id == user_id)
    if since:
        query = query.where(AuditEvent.created_at >= since)
    if cursor:
        query = query.where(AuditEvent.id < cursor)
    rows = list((await db.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1))).all())
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None
