"""A turn: the user's message, then the assistant's answer.

`prepare` checks the message fits, stores the user's message and an empty `streaming` answer
(both durable before any engine is called) and builds the engine request. The answer is then
written by a task in this process (`begin`: blocking, streaming, and async without Redis) or by a
`chatgate worker` from the Redis queue (`submit`: async with Redis).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Literal

from chatgate.auth.service import User
from chatgate.chat.answers import AnswerWriter, TurnEnd
from chatgate.chat.context import build_messages, history_budget, load_context
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.service import TITLE_LENGTH, bump_session
from chatgate.core.config import AssistantConfig
from chatgate.core.db import Database
from chatgate.core.errors import Conflict
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.core.tracing import current_trace_id
from chatgate.providers.base import CompletionRequest, Provider
from chatgate.providers.registry import ProviderRegistry
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


class TurnManager:
    """Prepares turns, runs in-process answers, and hands queued ones to the task queue."""

    def __init__(
        self,
        *,
        database: Database,
        providers: ProviderRegistry,
        writer: AnswerWriter,
        queue: TaskQueue | None = None,
    ) -> None:
        self._database = database
        self._providers = providers
        self._writer = writer
        self.queue = queue
        self._active: dict[uuid.UUID, Turn] = {}

    async def prepare(
        self, *, user: User, session: ChatSession, assistant: AssistantConfig, content: str
    ) -> PreparedTurn:
        provider = self._providers.for_assistant(assistant)
        user_tokens = provider.count_tokens(content)
        budget = history_budget(assistant, provider, user_tokens)
        if session.id in self._active:
            raise Conflict(
                "an answer is still being written in this session; stop it or wait",
                code="turn_in_progress",
            )
        trace_id = current_trace_id() or None
        async with self._database.session() as db:
            history = await load_context(db, session_id=session.id, budget=budget)
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
            db.add_all([user_message, answer])
            await db.execute(
                bump_session(session.id, added=2, title=content.strip()[:TITLE_LENGTH])
            )
            # The user's message is durable before any engine is called.
            await db.commit()
        request = CompletionRequest(
            model=assistant.model,
            messages=build_messages(assistant, history, content),
            max_tokens=assistant.max_answer_tokens,
            temperature=assistant.temperature,
            user=user.id,
            trace_id=trace_id,
            session_state=dict((session.provider_state or {}).get(provider.id, {})),
        )
        return PreparedTurn(
            user_message=user_message, answer=answer, request=request, provider=provider
        )

    async def begin(
        self, *, user: User, session: ChatSession, assistant: AssistantConfig, content: str
    ) -> Turn:
        """Prepares the turn and writes its answer in a task of this process."""
        prepared = await self.prepare(
            user=user, session=session, assistant=assistant, content=content
        )
        turn = Turn(
            session_id=session.id, user_message=prepared.user_message, answer=prepared.answer
        )
        self._active[session.id] = turn
        turn.task = asyncio.create_task(self._run(turn, prepared.provider, prepared.request))
        return turn

    async def submit(
        self, *, user: User, session: ChatSession, assistant: AssistantConfig, content: str
    ) -> PreparedTurn:
        """Prepares the turn and queues its answer for a worker."""
        assert self.queue is not None
        prepared = await self.prepare(
            user=user, session=session, assistant=assistant, content=content
        )
        await self.queue.enqueue_answer(
            answer_id=prepared.answer.id, provider_id=prepared.provider.id, request=prepared.request
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
        finally:
            self._active.pop(turn.session_id, None)
        turn.events.put_nowait(end)
        turn.first_output.set()
        return end
