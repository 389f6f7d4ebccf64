"""The chat domain's dependencies: the turn manager, and the one loader that checks ownership
(another user's session is a 404, like a missing one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatgate.auth.deps import CurrentUser
from chatgate.chat.handoffs import HandoffDesk
from chatgate.chat.models import ChatSession
from chatgate.chat.service import get_owned_session
from chatgate.chat.turns import TurnManager
from chatgate.core.deps import DbSession
from chatgate.core.ids import parse_id
from chatgate.core.parts import part


async def _owned_session(session_id: str, db: DbSession, user: CurrentUser) -> ChatSession:
    return await get_owned_session(
        db, user=user, session_id=parse_id(session_id, what="session_id")
    )


OwnedSession = Annotated[ChatSession, Depends(_owned_session)]
Turns = Annotated[TurnManager, Depends(part(TurnManager))]
Handoffs = Annotated[HandoffDesk, Depends(part(HandoffDesk))]
