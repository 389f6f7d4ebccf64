"""The usage ledger's tables (migration 0017): rows of engine calls or cached answers, and the
prices per model the calls are costed at."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime


class UsageRecord(Base):
    __tablename__ = "usage_records"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    day: Mapped[date] = mapped_column(Date)  # created_at's UTC day, for grouping and budgets
    user_id: Mapped[str] = mapped_column(String(255))
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assistant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    route: Mapped[str] = mapped_column(String(32))
    engine: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: cached
    model: Mapped[str] = mapped_column(String(200))
    # Calls summed in this row: of one day, user, key, assistant, route, engine and model,
    # recorded within one write of the ledger (usage/ledger.py).
    calls: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float] = mapped_column(Float)
    cached: Mapped[bool] = mapped_column(Boolean)
    fallback: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_usage_records_day", "day"),
        Index("ix_usage_records_user_day", "user_id", "day"),
        Index("ix_usage_records_key_day", "key_id", "day"),
    )


class ModelPrice(Base):
    __tablename__ = "model_prices"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    input_per_million: Mapped[float] = mapped_column(Float)
    output_per_million: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
