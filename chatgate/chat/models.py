"""Sessions and messages: one row per message, keyset-paged on (session_id, id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Uuid, false, text
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.vault.sealed import SealedJSON, SealedText

# `tool`: a tool's result given back to the model (OpenAI's Responses API, responses/);
# `agent`: a person's reply to a conversation handed off to them (handoff/).
MessageRole = Literal["user", "assistant", "system", "tool", "agent"]
# `streaming` while an answer is being written; how it ended otherwise.
MessageStatus = Literal["complete", "streaming", "interrupted", "failed"]


class ChatSession(Base):
    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(255))
    assistant_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(SealedText, default="")
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # Per-engine state kept between turns, keyed by provider id (e.g. Dify's conversation_id).
    provider_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_sessions_user_updated", "user_id", "updated_at", "id"),
        Index("ix_sessions_user_assistant_updated", "user_id", "assistant_id", "updated_at", "id"),
        # The retention job's scan for conversations past their period (migration 0014).
        Index("ix_sessions_updated_at", "updated_at"),
    )


def _while_streaming(name: str, column: str, *, unique: bool = False) -> Index:
    """A partial index over the answers still being written, on SQLite and PostgreSQL alike."""
    streaming = text("status = 'streaming'")
    return Index(name, column, unique=unique, sqlite_where=streaming, postgresql_where=streaming)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sessions.id", ondelete="CASCADE")
    )
    role: Mapped[MessageRole] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(SealedText, default="")
    status: Mapped[MessageStatus] = mapped_column(String(16), default="complete")
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # An answer given from the answer cache, not written by an engine for this turn.
    cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The engine that wrote an answer (None: the canned answer, or not written by an engine),
    # and whether that was a fallback (another engine than the assistant's, or the canned answer).
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # An answer's citations (API.md's `Citation`s): the knowledge bases' passages the engine was
    # given, or a Dify app's retriever resources; None for an assistant without knowledge bases.
    citations: Mapped[list[dict[str, Any]] | None] = mapped_column(SealedJSON, nullable=True)
    # An assistant message's calls of the client's tools ([{"id", "name", "arguments"}]), and
    # the call a tool message answers (migration 0015); None for every other message.
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(SealedJSON, nullable=True)
    tool_call_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by every write (an update that does not name it gets the time now): a history page's
    # ETag is its messages' ids, updated_at and status (chat/history.py).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_messages_session_id_id", "session_id", "id"),
        # Finds answers a dead process left streaming, without indexing every finished message.
        _while_streaming("ix_messages_streaming", "updated_at"),
        # One answer at a time per session, whichever process writes it (migration 0008).
        _while_streaming("uq_messages_one_streaming_per_session", "session_id", unique=True),
    )
