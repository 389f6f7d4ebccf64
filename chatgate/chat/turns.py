"""A turn: the user's message, then the assistant's answer.

`prepare` checks the message fits, stores the user's message and an empty `streaming` answer
(both durable before any engine is called) and builds the engine request. The answer is then
written by a task in this process (`begin`: blocking, streaming, and async without Redis) or by a
`chatgate worker` from the Redis queue (`submit`: async with Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.auth.service import User
from chatgate.cache.service import AnswerCache, CacheDirective, CachePlan, fill_from_cache
from chatgate.chat.answers import AnswerWriter, TurnEnd, recover_unfinished_answers
from chatgate.chat.context import build_messages, history_budget, load_context
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.service import TITLE_LENGTH, bump_session
from chatgate.core.config import AssistantConfig
from chatgate.core.db import Database
from chatgate.core.errors import Conflict
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.core.tracing import current_trace_id
from chatgate.guards.service import guard_turn
from chatgate.providers.base import CompletionRequest, Provider
from chatgate.providers.fallback import chain_spec
from chatgate.providers.registry import ProviderRegistry
from chatgate.ratelimit.service import RateLimiter
from chatgate.tasks.queue import TaskQueue

StopReason = Literal["stopped", "client_disconnected", "shutdown"]


@dataclass(frozen=True, slots=True)
class Replacement:
    """The whole answer so far, replaced by the engine (e.g. its output moderation)."""

    text: str


@dataclass(slots=True)
class PreparedTurn:
    user_message: Message
    answer: Message
    request: CompletionRequest
    provider: Provider
    cache: CachePlan | None = None
    # Masked values to put back into the answer, known to this process only (never queued).
    restores: bool = False


@dataclass(eq=False)
class Turn:
    """An answer being written in this process, and the live stream that watches it."""

    session_id: uuid.UUID
    user_message: Message
    answer: Message
    events: asyncio.Queue[str | Replacement | TurnEnd] = field(default_factory=asyncio.Queue)
    first_output: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: StopReason | None = None
    task: asyncio.Task[TurnEnd] | None = None
    cache: CachePlan | None = None

    def on_text(self, text: str) -> None:
        self.events.put_nowait(text)
        self.first_output.set()

    def on_replace(self, text: str) -> None:
        self.events.put_nowait(Replacement(text))
        self.first_output.set()

    def stop(self, reason: StopReason) -> None:
        if self.task is not None and not self.task.done():
            self.stop_reason = self.stop_reason or reason
            self.task.cancel()

    async def result(self) -> TurnEnd:
        assert self.task is not None
        return await asyncio.shield(self.task)


def turn_in_progress() -> Conflict:
    return Conflict(
        "an answer is still being written in this session; stop it or wait",
        code="turn_in_progress",
    )


class TurnManager:
    """Prepares turns, runs in-process answers, and hands queued ones to the task queue."""

    def __init__(
        self,
        *,
        database: Database,
        providers: ProviderRegistry,
        writer: AnswerWriter,
        queue: TaskQueue | None = None,
        limiter: RateLimiter | None = None,
        cache: AnswerCache | None = None,
    ) -> None:
        self._database = database
        self._limiter = limiter
        self._providers = providers
        self._writer = writer
        self.queue = queue
        self._cache = cache
        self._active: dict[uuid.UUID, Turn] = {}
        # Sessions whose turn is being prepared, not yet in `_active`.
        self._starting: set[uuid.UUID] = set()

    async def prepare(
        self,
        *,
        user: User,
        session: ChatSession,
        assistant: AssistantConfig,
        content: str,
        cache: CacheDirective = "use",
    ) -> PreparedTurn:
        provider = self._providers.for_assistant(assistant)
        user_tokens = provider.count_tokens(content)
        budget = history_budget(assistant, provider, user_tokens)
        if self._limiter is not None:
            await self._limiter.check_tokens(
                user=user.id, assistant=assistant.id, estimate=user_tokens
            )
        if session.id in self._active:
            raise turn_in_progress()
        trace_id = current_trace_id() or None
        async with self._database.session() as db:
            history = await load_context(db, session_id=session.id, budget=budget)
            # Guarded before anything is stored: a block keeps only its audit event.
            guard = await guard_turn(
                db, policy=assistant.guards, history=history, content=content,
                user_id=user.id, assistant_id=assistant.id, session_id=str(session.id),
            )  # fmt: skip
            if guard.private:
                provider = self._providers.for_assistant(assistant, private=True)
            session_state = dict((session.provider_state or {}).get(provider.id, {}))
            # Nothing earlier for the engine to see, nothing personal: the cache may answer.
            context_free = not history and not session_state and not guard.personal
            plan = (
                await self._cache.consult(
                    assistant=assistant, provider_id=provider.id, question=content, directive=cache
                )
                if self._cache is not None and context_free
                else None
            )
            now = utcnow()
            user_message = Message(
                id=new_id(), session_id=session.id, role="user", content=content,
                status="complete", token_count=user_tokens, trace_id=trace_id,
                created_at=now, updated_at=now,
            )  # fmt: skip
            answer = Message(
                id=new_id(), session_id=session.id, role="assistant", content="",
                status="streaming", token_count=0, model=assistant.model, trace_id=trace_id,
                created_at=now, updated_at=now,
            )  # fmt: skip
            cached = (
                (plan.text, provider.count_tokens(plan.text))
                if plan is not None and plan.text is not None
                else None
            )
            # The user's message is durable before any engine is called.
            await self._store(db, session.id, user_message, answer, title=content, cached=cached)
        request = CompletionRequest(
            model=assistant.model,
            messages=build_messages(assistant, guard.history, guard.content),
            max_tokens=assistant.max_answer_tokens,
            temperature=assistant.temperature,
            user=user.id,
            trace_id=trace_id,
            session_state=session_state,
            assistant_id=assistant.id,
        )
        return PreparedTurn(
            user_message=user_message, answer=answer, request=request,
            provider=guard.wrap(provider), cache=plan, restores=guard.restores,
        )  # fmt: skip

    async def _store(
        self,
        db: AsyncSession,
        session_id: uuid.UUID,
        user_message: Message,
        answer: Message,
        *,
        title: str,
        cached: tuple[str, int] | None,
    ) -> None:
        """Commits a turn's messages. The database holds one `streaming` answer per session,
        so a turn begun meanwhile by another process is refused here; an answer left streaming
        by a process that died without a restart to recover it is ended first, once.

        The answer goes in as `streaming` even when the cache answers it (`cached`: its text
        and token count), and is completed in the same transaction, so that a cached answer
        is refused too while another is being written."""
        for attempt in (1, 2):
            try:
                db.add_all([user_message, answer])
                await db.flush()
                if cached is not None:
                    fill_from_cache(answer, cached[0], token_count=cached[1])
                await db.execute(
                    bump_session(session_id, added=2, title=title.strip()[:TITLE_LENGTH])
                )
                await db.commit()
                return
            except IntegrityError as exc:
                await db.rollback()
                if "unique" not in str(exc.orig).lower():
                    raise  # e.g. the session deleted meanwhile: not a turn in progress
                if attempt == 2 or not await recover_unfinished_answers(
                    self._database, all_rows=False, session_id=session_id
                ):
                    raise turn_in_progress() from None

    async def begin(
        self,
        *,
        user: User,
        session: ChatSession,
        assistant: AssistantConfig,
        content: str,
        cache: CacheDirective = "use",
    ) -> Turn:
        """Prepares the turn and writes its answer in a task of this process."""
        # Claimed before the first await, so messages sent at once cannot start two turns.
        if session.id in self._starting:
            raise turn_in_progress()
        self._starting.add(session.id)
        try:
            prepared = await self.prepare(
                user=user, session=session, assistant=assistant, content=content, cache=cache
            )
        finally:
            self._starting.discard(session.id)
        turn = Turn(
            session_id=session.id, user_message=prepared.user_message, answer=prepared.answer,
            cache=prepared.cache,
        )  # fmt: skip
        if prepared.cache is not None and prepared.cache.hit:
            turn.task = asyncio.create_task(self._replay(turn))
            return turn
        self._active[session.id] = turn
        turn.task = asyncio.create_task(self._run(turn, prepared.provider, prepared.request))
        return turn

    async def submit(
        self,
        *,
        user: User,
        session: ChatSession,
        assistant: AssistantConfig,
        content: str,
        cache: CacheDirective = "use",
    ) -> PreparedTurn:
        """Prepares the turn and queues its answer for a worker (none is needed for a cached
        one; the worker stores a cacheable answer in the cache as `begin` would)."""
        assert self.queue is not None
        prepared = await self.prepare(
            user=user, session=session, assistant=assistant, content=content, cache=cache
        )
        if prepared.cache is not None and prepared.cache.hit:
            return prepared
        if prepared.restores:
            # Its masked values must not sit in Redis for a worker: written here instead.
            turn = Turn(
                session_id=session.id, user_message=prepared.user_message, answer=prepared.answer
            )
            self._active[session.id] = turn
            turn.task = asyncio.create_task(self._run(turn, prepared.provider, prepared.request))
            return prepared
        # The worker asks the same engines in the same order, with the same canned answer.
        await self.queue.enqueue_answer(
            answer_id=prepared.answer.id,
            chain=chain_spec(prepared.provider),
            request=prepared.request,
            cache=prepared.cache,
        )
        return prepared

    def running(self, session_id: uuid.UUID) -> Turn | None:
        return self._active.get(session_id)

    async def shutdown(self) -> None:
        turns = list(self._active.values())
        for turn in turns:
            turn.stop("shutdown")
        await asyncio.gather(*(t.task for t in turns if t.task), return_exceptions=True)

    async def _run(self, turn: Turn, provider: Provider, request: CompletionRequest) -> TurnEnd:
        try:
            end = await self._writer.write(
                answer=turn.answer,
                provider=provider,
                request=request,
                listener=turn,
                stop_reason=lambda: turn.stop_reason or "stopped",
            )
            if turn.cache is not None and self._cache is not None:
                # Stored before the answer is handed back, so the next ask finds it. A stop
                # that comes meanwhile is too late: the answer is complete and stays so.
                with contextlib.suppress(asyncio.CancelledError):
                    await self._cache.remember(
                        turn.cache, sent_question=request.messages[-1].content,
                        provider_id=provider.id, answer=end.message,
                    )  # fmt: skip
        finally:
            self._active.pop(turn.session_id, None)
        turn.events.put_nowait(end)
        turn.first_output.set()
        return end

    async def _replay(self, turn: Turn) -> TurnEnd:
        """A cached answer, complete in its row already: one delta with the whole text."""
        turn.on_text(turn.answer.content)
        end = TurnEnd(message=turn.answer, error=None)
        turn.events.put_nowait(end)
        return end
