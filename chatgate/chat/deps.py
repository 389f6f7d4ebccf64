"""The one loader that checks ownership: another user's session is a 404, like a missing one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from chatgate.chat.models import ChatSession
from chatgate.chat.service import get_owned_session
from chatgate.core.deps import CurrentUser, DbSession
from chatgate.core.errors import AppError


def parse_id(value: str, *, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise AppError(
            f"{what} {value[:64]!r} is not a UUID", code=f"invalid_{what}", status=422
        ) from None


async def _owned_session(session_id: str, db: DbSession, user: CurrentUser) -> ChatSession:
    return await get_owned_session(
        db, user=user, session_id=parse_id(session_id, what="session_id")
    )


OwnedSession = Annotated[ChatSession, Depends(_owned_session)]
