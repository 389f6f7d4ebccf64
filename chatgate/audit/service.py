from __future__ import annotations

from typing import Any

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
