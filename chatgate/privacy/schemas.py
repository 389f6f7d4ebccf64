"""The shapes of the export, for the API's documentation: the export itself is written as it is
read (`export.py`), never built from these models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from chatgate.chat.schemas import MessageOut, SessionOut


class ExportedSession(SessionOut):
    messages: list[MessageOut]


class Export(BaseModel):
    user_id: str
    exported_at: datetime
    sessions: list[ExportedSession]
