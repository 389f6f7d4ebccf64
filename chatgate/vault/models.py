"""Each user's data key, wrapped by a deployment key: destroying the row shreds every copy of
what it sealed, backups included (an archive keeps its keys apart: docs/backup.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime
from chatgate.core.time import utcnow


class DataKeyRow(Base):
    __tablename__ = "data_keys"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Named in every sealed value; random, so a value names no user.
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    kek_id: Mapped[str] = mapped_column(String(32))  # the deployment key that wraps it
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
