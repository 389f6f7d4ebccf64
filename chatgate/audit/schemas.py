from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from chatgate.audit.models import AuditEvent


class AuditEventOut(BaseModel):
    id: str
    action: str
    user_id: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    trace_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=str(event.id), action=event.action, user_id=event.user_id,
            target_type=event.target_type, target_id=event.target_id, details=event.details,
            trace_id=event.trace_id, created_at=event.created_at,
        )  # fmt: skip


class AuditPage(BaseModel):
    data: list[AuditEventOut]
    has_more: bool
    next_cursor: str | None
