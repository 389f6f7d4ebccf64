"""Hand-offs to a person: one row per session that ever asked for one (migration 0017)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime
from chatgate.core.time import utcnow

# `waiting` for a person, `with_agent` once one replied, `released` back to the assistant.
HandoffStatus = Literal["waiting", "with_agent", "released"]
HandoffReason = Literal["requested", "engine_failed", "guard_blocked"]
# The webhook of a hand-off: being tried, delivered, given up after its tries, not sent for
# want of a signing secret (`unsigned_refused`), or none to send (no webhook_url).
WebhookStatus = Literal["pending", "delivered", "failed", "unsigned_refused"]
# A session in one of these is answered by a person, not the assistant.
WITH_A_PERSON: tuple[HandoffStatus, ...] = ("waiting", "with_agent")


class Handoff(Base):
    __tablename__ = "handoffs"

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(255))
    assistant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[HandoffStatus] = mapped_column(String(16))
    reason: Mapped[HandoffReason] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    agent_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    webhook_status: Mapped[WebhookStatus | None] = mapped_column(String(16), nullable=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    webhook_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_handoffs_status_requested", "status", "requested_at"),)
