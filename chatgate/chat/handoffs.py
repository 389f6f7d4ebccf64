"""A chat session handed to a person (handoff/): the turn's side of it.

Before a turn (`intercept`): while a person has the session, or when the user asks for one and
the assistant's policy allows it, the user's message is stored and the engine is not called; a
new hand-off also stores the policy's message to the user (an assistant message from no engine,
like the canned busy answer, so it never goes into an engine's context). After an answer
(`after_answer`, called by `TurnManager` wherever the answer was written): an engine chain that
failed or fell through to the canned answer hands off when the policy says so. After a guard's
block (`after_guard_block`): the policy's count of blocks in the session hands off. A person's
reply (`reply`) is a message of role `agent`; `release` gives the session back to the assistant.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.assistants.service import AssistantCatalog
from chatgate.auth.service import User
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.prepare import Ask, turn_in_progress
from chatgate.chat.service import TITLE_LENGTH, bump_session
from chatgate.core.config import AssistantConfig
from chatgate.core.db import Database
from chatgate.core.errors import AppError
from chatgate.core.ids import new_id
from chatgate.core.policies import HandoffPolicy
from chatgate.core.time import utcnow
from chatgate.core.tracing import current_trace_id
from chatgate.guards.service import InjectionBlocked, PiiBlocked
from chatgate.handoff import service
from chatgate.handoff.detect import asks_for_person
from chatgate.handoff.models import Handoff, HandoffReason
from chatgate.handoff.webhook import HandoffWebhooks
from chatgate.providers.registry import ProviderRegistry
from chatgate.vault.service import Vault

log = logging.getLogger("chatgate.chat.handoffs")


@dataclass(slots=True)
class HeldTurn:
    """A user's message that went to a person instead of the assistant."""

    user_message: Message
    notice: Message | None  # the policy's message, when this message started the hand-off
    handoff: Handoff


class HandoffDesk:
    def __init__(
        self,
        *,
        database: Database,
        providers: ProviderRegistry,
        catalog: AssistantCatalog,
        webhooks: HandoffWebhooks,
        vault: Vault,
    ) -> None:
        self._vault = vault
        self._database = database
        self._providers = providers
        self._catalog = catalog
        self._webhooks = webhooks

    async def intercept(self, ask: Ask) -> HeldTurn | None:
        """The message held for a person, or None: the assistant answers it. An assistant with
        no policy answers every message without a look (a hand-off left open when its policy
        was removed stays in the queue until a person releases it)."""
        policy = ask.assistant.handoff
        if policy is None:
            return None
        asked = policy.on_request and asks_for_person(ask.content)
        try:
            return await self._hold(ask, policy, asked=asked)
        except (IntegrityError, service.AlreadyHandedOff):
            # Another message of the session started the hand-off meanwhile: held for it.
            return await self._hold(ask, policy, asked=asked)

    async def _hold(self, ask: Ask, policy: HandoffPolicy, *, asked: bool) -> HeldTurn | None:
        async with self._database.session() as db:
            current = await service.active_handoff(db, ask.session.id)
            if current is None and not asked:
                return None
            if await _answer_streaming(db, ask.session.id):
                raise turn_in_progress()
            tokens = await self._count(ask.assistant, ask.content)
            now = utcnow()
            user_message = Message(
                id=new_id(), session_id=ask.session.id, role="user", content=ask.content,
                status="complete", token_count=tokens, trace_id=current_trace_id() or None,
                created_at=now, updated_at=now,
            )  # fmt: skip
            db.add(user_message)
            title = ask.content.strip()[:TITLE_LENGTH]
            if current is not None:
                await db.execute(bump_session(ask.session.id, added=1, title=title))
                await db.commit()
                return HeldTurn(user_message, None, current)
            notice, handoff = await self._start(db, ask.session, policy, "requested", title=title)
            return HeldTurn(user_message, notice, handoff)

    async def after_answer(self, session_id: uuid.UUID, answer: Message) -> None:
        """Hands off after an answer the engine chain failed to give, if the policy says so.
        Never raises: the answer is written whatever becomes of this."""
        canned = answer.fallback and answer.provider is None and not answer.cached
        if answer.status != "failed" and not canned:
            return
        try:
            async with self._database.session() as db:
                session = await db.get(ChatSession, session_id)
                if session is None or await service.active_handoff(db, session_id):
                    return
                assistant = await self._catalog.get(session.assistant_id)
                policy = assistant.handoff
                if policy is None or not policy.on_engine_failure:
                    return
                await self._start(db, session, policy, "engine_failed")
        except service.AlreadyHandedOff:
            pass
        except Exception:
            log.warning("handing off after a failed answer failed", exc_info=True)

    @asynccontextmanager
    async def watching_guards(self, ask: Ask) -> AsyncIterator[None]:
        """Around a turn's start: a guard's block may hand the session off (the block is still
        the answer: the user is told why, and the policy's message is in the history)."""
        try:
            yield
        except (PiiBlocked, InjectionBlocked):
            await self._after_guard_block(ask)
            raise

    async def _after_guard_block(self, ask: Ask) -> None:
        policy = ask.assistant.handoff
        if policy is None or policy.on_guard_blocks is None:
            return
        try:
            async with self._database.session() as db:
                if await service.active_handoff(db, ask.session.id):
                    return
                if await service.guard_blocks_in(db, ask.session.id) >= policy.on_guard_blocks:
                    await self._start(db, ask.session, policy, "guard_blocked")
        except service.AlreadyHandedOff:
            pass
        except Exception:
            log.warning("handing off after a guard's block failed", exc_info=True)

    async def reply(
        self, db: AsyncSession, *, session_id: uuid.UUID, agent: User, content: str
    ) -> Message:
        """A person's reply: stored as the session's message of role `agent`."""
        handoff = await service.handoff_for_agent(db, session_id)
        await self._vault.enter(handoff.user_id)  # the conversation is sealed as its user's
        try:
            assistant = await self._catalog.get(handoff.assistant_id)
            tokens = await self._count(assistant, content)
        except AppError:
            tokens = len(content) // 3  # the assistant is gone or off: an estimate will do
        now = utcnow()
        message = Message(
            id=new_id(), session_id=session_id, role="agent", content=content, status="complete",
            token_count=tokens, trace_id=current_trace_id() or None, created_at=now,
            updated_at=now,
        )  # fmt: skip
        db.add(message)
        await db.execute(bump_session(session_id, added=1))
        service.mark_replied(db, handoff, agent_id=agent.id)
        await db.commit()
        return message

    async def release(self, db: AsyncSession, *, session_id: uuid.UUID, agent: User) -> Handoff:
        """The session goes back to the assistant."""
        handoff = await service.handoff_for_agent(db, session_id)
        service.release(db, handoff, agent_id=agent.id)
        await db.commit()
        return handoff

    async def _start(
        self,
        db: AsyncSession,
        session: ChatSession,
        policy: HandoffPolicy,
        reason: HandoffReason,
        *,
        title: str | None = None,
    ) -> tuple[Message, Handoff]:
        """Starts the hand-off with the policy's message to the user, commits, and sends the
        webhook (after the commit: the receiver may look the session up at once)."""
        now = utcnow()
        notice = Message(
            id=new_id(), session_id=session.id, role="assistant", content=policy.message,
            status="complete", token_count=0, provider=None, fallback=True,
            trace_id=current_trace_id() or None, created_at=now, updated_at=now,
        )  # fmt: skip
        db.add(notice)
        handoff = await service.start_handoff(
            db, session_id=session.id, user_id=session.user_id,
            assistant_id=session.assistant_id, reason=reason,
            webhook_status=self._webhooks.status_for(policy.webhook_url),
        )  # fmt: skip
        added = 1 if title is None else 2
        await db.execute(bump_session(session.id, added=added, title=title))
        await db.commit()
        self._webhooks.send(handoff, policy.webhook_url)
        return notice, handoff

    async def _count(self, assistant: AssistantConfig, text: str) -> int:
        return await self._providers.for_assistant(assistant).count_tokens_async(text)


async def _answer_streaming(db: AsyncSession, session_id: uuid.UUID) -> bool:
    found = await db.scalar(
        select(Message.id).where(Message.session_id == session_id, Message.status == "streaming")
    )
    return found is not None
