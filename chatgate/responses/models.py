"""Stored responses (OpenAI's Responses API with `store: true`): each the response object as it
was answered, in a chatgate session of its user, with the messages it added to that session."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime
from chatgate.core.time import utcnow
from chatgate.vault.sealed import SealedJSON


class StoredResponse(Base):
    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # resp_…
    user_id: Mapped[str] = mapped_column(String(255))
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sessions.id", ondelete="CASCADE")
    )
    # The response this one continued; a fork of a conversation leaves siblings, whose messages
    # are no part of each other's conversation (responses/store.py).
    previous_response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The messages it added to the session, oldest first: its input's, then its answer.
    message_ids: Mapped[list[str]] = mapped_column(JSON)
    # The response object as answered, which GET returns as it is: user content, so sealed.
    body: Mapped[dict[str, Any]] = mapped_column(SealedJSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_responses_session_id", "session_id"),)
