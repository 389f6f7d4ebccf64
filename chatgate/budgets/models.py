"""A budget: how many tokens and/or how much cost one user or API key may spend per day or month
(migration 0017's `budgets`). What is spent is not here: it lives in the spend store
(`store.py`), shared by every process through Redis."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import BigInteger, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime
from chatgate.core.time import utcnow

Scope = Literal["user", "key"]
Period = Literal["day", "month"]


class Budget(Base):
    __tablename__ = "budgets"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    period: Mapped[str] = mapped_column(String(8))
    max_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
