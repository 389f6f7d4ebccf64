"""Assistants live in the database: the YAML file seeds them, admins change them at run time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime
from chatgate.core.time import utcnow


class AssistantRow(Base):
    __tablename__ = "assistants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    max_context_tokens: Mapped[int] = mapped_column(Integer)
    max_answer_tokens: Mapped[int] = mapped_column(Integer)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    fallback_providers: Mapped[list[str]] = mapped_column(JSON, default=list)
    fallback_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    cache_answers: Mapped[bool] = mapped_column(Boolean, default=True)
    guards: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    knowledge_bases: Mapped[list[str]] = mapped_column(JSON, default=list)
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stream_on_disconnect: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The hand-off policy (core/policies.py's HandoffPolicy as JSON); None = no hand-off.
    handoff: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssistantVersionRow(Base):
    """One version of an assistant as it was saved: its configuration (every field but `id`,
    and whether it was on), who saved it (None: the YAML seed or the migration), and when."""

    __tablename__ = "assistant_versions"

    assistant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
