"""The people's side of a hand-off: the queue, a reply (role `agent`), the release. Admins only.

A person reads the conversation with the user's own history route and `X-Chatgate-User`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chatgate.auth.deps import AdminUser
from chatgate.chat import service as chat_service
from chatgate.chat.deps import Handoffs
from chatgate.chat.schemas import MessageOut
from chatgate.core.deps import DbSession, SettingsDep
from chatgate.core.ids import parse_id
from chatgate.handoff.schemas import AgentReply, HandoffList, HandoffOut
from chatgate.handoff.service import HandoffFilter, list_handoffs

router = APIRouter(prefix="/v1/admin/handoffs", tags=["admin"])


@router.get("", response_model=HandoffList)
async def read_handoffs(
    db: DbSession, _: AdminUser, status: Annotated[HandoffFilter, Query()] = "all"
) -> HandoffList:
    return HandoffList(data=[HandoffOut.of(h) for h in await list_handoffs(db, status=status)])


@router.post("/{session_id}/reply", response_model=MessageOut, status_code=201)
async def reply(
    session_id: str,
    body: AgentReply,
    db: DbSession,
    agent: AdminUser,
    settings: SettingsDep,
    handoffs: Handoffs,
) -> MessageOut:
    chat_service.check_content(body.content, settings)
    message = await handoffs.reply(
        db, session_id=parse_id(session_id, what="session_id"), agent=agent, content=body.content
    )
    return MessageOut.of(message)


@router.post("/{session_id}/release", response_model=HandoffOut)
async def release(
    session_id: str, db: DbSession, agent: AdminUser, handoffs: Handoffs
) -> HandoffOut:
    handoff = await handoffs.release(
        db, session_id=parse_id(session_id, what="session_id"), agent=agent
    )
    return HandoffOut.of(handoff)
