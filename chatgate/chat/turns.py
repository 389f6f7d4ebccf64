"""A turn: the user's message, then the assistant's answer.

`chat/prepare.py` stores the user's message and an empty `streaming` answer (both durable before
any engine is called) and builds the engine request. The answer is then written by a task in
this process (`begin`: blocking, streaming, and async without Redis) or by a `chatgate worker`
from the Redis queue (`submit`, then `write_queued` in the worker: async with Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from chatgate.budgets.service import Budgets
from chatgate.budgets.store import Reservation
from chatgate.cache.service import AnswerCache, CachePlan
from chatgate.chat.answers import AnswerWriter, TurnEnd, interrupt_answer
from chatgate.chat.events import AnswerEvents
from chatgate.chat.liveness import Liveness
from chatgate.chat.models import Message, MessageStatus
from chatgate.chat.prepare import Ask, PreparedTurn, TurnParts, prepare_turn, turn_in_progress
from chatgate.chat.streamlog import EventSink, LogEvent, StreamLog
from chatgate.core.config import OnDisconnect
from chatgate.core.db import Database
from chatgate.core.errors import ServiceUnavailable
from chatgate.knowledge.retrieval import Retriever
from chatgate.providers.base import CompletionRequest, Provider
from chatgate.providers.fallback import chain_spec
from chatgate.providers.registry import ProviderRegistry
from chatgate.ratelimit.service import RateLimiter
from chatgate.tasks.queue import QueuedAnswer, TaskQueue
from chatgate.usage.ledger import Ledger

StopReason = Literal["stopped", "client_disconnected", "shutdown"]
AnswerEnded = Callable[[uuid.UUID, Message], Awaitable[None]]
# How long a stop waits for a worker to end the answer it writes, polling its row.
STOP_WAIT = 5.0
STOP_POLL = 0.1
log = logging.getLogger("chatgate.chat.turns")


@dataclass(eq=False)
class Turn:
    """An answer being written in this process, and the live stream that watches it: its events
    (numbered, logged for resuming anywhere) in `events` as they happen."""

    session_id: uuid.UUID
    user_message: Message
    answer: Message
    log: EventSink
    events: asyncio.Queue[LogEvent] = field(default_factory=asyncio.Queue)
    first_output: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: StopReason | None = None
    task: asyncio.Task[TurnEnd] | None = None
    cache: CachePlan | None = None
    # What the guards did, for the caller (`X-Chatgate-Guard`).
    guard_marks: dict[str, str] = field(default_factory=dict)
    # Whose turn it is: erasing that user stops it.
    user_id: str = ""
    # What its live stream's client going away does to it.
    on_disconnect: OnDisconnect = "continue"
    stream: AnswerEvents = field(init=False)

    def __post_init__(self) -> None:
        self.stream = AnswerEvents(self.log, self.answer.id, live=self.events)
        self.stream.start(self.answer, self.user_message.id)

    def on_text(self, text: str) -> None:
        self.stream.on_text(text)
        self.first_output.set()

    def on_replace(self, text: str) -> None:
        self.stream.on_replace(text)
        self.first_output.set()

    def on_citations(self, citations: list[dict[str, Any]]) -> None:
        self.stream.on_citations(citations)

    def end(self, end: TurnEnd) -> None:
        self.stream.end(end)
        self.first_output.set()

    def stop(self, reason: StopReason) -> None:
        if self.task is not None and not self.task.done():
            self.stop_reason = self.stop_reason or reason
            self.task.cancel()

    async def result(self) -> TurnEnd:
        assert self.task is not None
        return await asyncio.shield(self.task)


class TurnManager:
    """Runs in-process answers, hands queued ones to the task queue, and writes queued ones in
    a worker; each turn is prepared by the steps of `chat/prepare.py`."""

    def __init__(
        self,
        *,
        database: Database,
        providers: ProviderRegistry,
        writer: AnswerWriter,
        queue: TaskQueue | None = None,
        limiter: RateLimiter | None = None,
        cache: AnswerCache | None = None,
        retriever: Retriever | None = None,
        log: StreamLog,
        liveness: Liveness | None = None,
        on_disconnect: OnDisconnect = "continue",
        ledger: Ledger | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self._parts = TurnParts(
            database=database, providers=providers, limiter=limiter, cache=cache,
            retriever=retriever, ledger=ledger, budgets=budgets,
        )  # fmt: skip
        self._writer = writer
        self.queue = queue
        self.log = log
        self._liveness = liveness
        self._on_disconnect = on_disconnect
        if liveness is not None:
            liveness.on_stop(self.stop_here)
        # Set by `drain`: running answers may go on until then (loop time), then end.
        self._drain_until: float | None = None
        self._draining: asyncio.Task[None] | None = None
        self._active: dict[uuid.UUID, Turn] = {}
        # Sessions whose turn is being prepared, not yet in `_active`.
        self._starting: set[uuid.UUID] = set()
        self._answer_ended: list[AnswerEnded] = []

    def on_answer_end(self, callback: AnswerEnded) -> None:
        """`callback(session_id, answer)` (chat/handoffs.py) after each answer an engine wrote
        here or in a worker (not a cached one), before its stream ends; it must not raise."""
        self._answer_ended.append(callback)

    async def _ended(self, session_id: uuid.UUID, answer: Message) -> None:
        for callback in self._answer_ended:
            await callback(session_id, answer)

    @property
    def database(self) -> Database:
        return self._parts.database

    @property
    def stops_elsewhere(self) -> bool:
        """Whether an answer another process writes can be stopped from here (with Redis)."""
        return self.queue is not None and self._liveness is not None

    async def prepare(self, ask: Ask) -> PreparedTurn:
        if ask.session.id in self._active:
            raise turn_in_progress()
        return await prepare_turn(ask, self._parts)

    async def begin(self, ask: Ask) -> Turn:
        """Prepares the turn and writes its answer in a task of this process."""
        session_id = ask.session.id
        # Claimed before the first await, so messages sent at once cannot start two turns.
        if session_id in self._starting:
            raise turn_in_progress()
        self._starting.add(session_id)
        try:
            prepared = await self.prepare(ask)
        finally:
            self._starting.discard(session_id)
        turn = Turn(
            session_id=session_id, user_message=prepared.user_message, answer=prepared.answer,
            log=self.log, cache=prepared.cache, guard_marks=prepared.guard_marks,
            user_id=ask.user.id,
            on_disconnect=ask.assistant.stream_on_disconnect or self._on_disconnect,
        )  # fmt: skip
        if prepared.cache is not None and prepared.cache.hit:
            turn.task = asyncio.create_task(self._replay(turn))
            return turn
        return self._write_here(turn, prepared)

    async def submit(self, ask: Ask) -> PreparedTurn:
        """Prepares the turn and queues its answer for a worker (none is needed for a cached
        one; the worker stores a cacheable answer in the cache as `begin` would)."""
        assert self.queue is not None
        prepared = await self.prepare(ask)
        if prepared.cache is not None and prepared.cache.hit:
            return prepared
        turn = Turn(
            session_id=ask.session.id, user_message=prepared.user_message, answer=prepared.answer,
            log=self.log, cache=prepared.cache, user_id=ask.user.id,
        )  # fmt: skip
        if prepared.restores:
            # Its masked values must not sit in Redis for a worker: written here instead.
            self._write_here(turn, prepared)
            return prepared
        # The worker asks the same engines in the same order, with the same canned answer.
        job = QueuedAnswer(
            prepared.answer.id, chain_spec(prepared.provider), prepared.request, prepared.cache,
            reservation=prepared.reservation,
        )  # fmt: skip
        try:
            # Its message_start logged first: the worker numbers its own events after it.
            await self.log.flush()
            await self.queue.enqueue_answer(job)
        except ServiceUnavailable:
            # Nowhere to queue it: written here, as without Redis, rather than left locking
            # the session. The task id and its status read the same either way.
            log.warning("queueing failed; the answer is written in this process")
            self._write_here(turn, prepared)
        return prepared

    def stop_here(self, answer_id: uuid.UUID) -> bool:
        """Stops the answer if this process writes it (asked by any process)."""
        for turn in self._active.values():
            if turn.answer.id == answer_id:
                turn.stop("stopped")
                return True
        return False

    async def stop_elsewhere(self, answer_id: uuid.UUID) -> Message | None:
        """Stops an answer another process writes (a replica, a worker) or none does yet: the
        answer as it ended, or None when it is gone, or its writer has not ended it within
        STOP_WAIT. Needs Redis (`queue`, `liveness`): without it there is one process."""
        assert self.queue is not None and self._liveness is not None
        await self._liveness.request_stop(answer_id)
        await self.queue.request_abort(answer_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT
        while True:
            async with self._parts.database.session() as db:
                answer = await db.get(Message, answer_id)
            if answer is None or answer.status != "streaming":
                return answer
            writer = await self._liveness.writer_of(answer_id)
            if writer is None and await self.queue.status(answer_id) != "running":
                # No process writes it (none took it yet, or its writer died): ended here; a
                # worker taking the job later finds it aborted, or its answer ended, and skips it.
                await interrupt_answer(self._parts.database, answer_id, reason="stopped")
                continue
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(STOP_POLL)

    def _write_here(self, turn: Turn, prepared: PreparedTurn) -> Turn:
        """Writes the turn's answer in a task of this process."""
        turn.stream.claim()
        self._active[turn.session_id] = turn
        turn.task = asyncio.create_task(self._run(turn, prepared))
        return turn

    def running(self, session_id: uuid.UUID) -> Turn | None:
        return self._active.get(session_id)

    async def stop_turns_of(self, user_id: str, *, begun_before: datetime | None = None) -> int:
        """Stops the user's answers being written in this process (their data is being erased;
        those begun before `begun_before`, when given) and waits for them to end; how many."""
        turns = [
            t for t in self._active.values()
            if t.user_id == user_id and (begun_before is None or t.answer.created_at < begun_before)
        ]  # fmt: skip
        for turn in turns:
            turn.stop("stopped")
        await asyncio.gather(*(t.task for t in turns if t.task), return_exceptions=True)
        return len(turns)

    @property
    def draining(self) -> bool:
        return self._drain_until is not None

    def drain(self, grace: float) -> None:
        """The process is to end (SIGTERM): running answers may go on for `grace` seconds more;
        `shutdown` then ends the rest."""
        if self._drain_until is None:
            self._drain_until = asyncio.get_running_loop().time() + grace
            self._draining = asyncio.create_task(self.shutdown(), name="drain")

    async def shutdown(self) -> None:
        """Ends every answer this process writes: at once, or when draining, those still
        running when the grace period is over (`interrupted`, text kept; a live stream gets an
        `error` telling it to resume elsewhere)."""
        running = [t.task for t in self._active.values() if t.task]
        if self._drain_until is not None and running:
            left = self._drain_until - asyncio.get_running_loop().time()
            if left > 0:
                await asyncio.wait(running, timeout=left)
        turns = list(self._active.values())
        for turn in turns:
            turn.stop("shutdown")
        await asyncio.gather(*(t.task for t in turns if t.task), return_exceptions=True)

    async def _run(self, turn: Turn, prepared: PreparedTurn) -> TurnEnd:
        provider, request = prepared.provider, prepared.request
        try:
            end = await self._writer.write(
                answer=turn.answer,
                provider=provider,
                request=request,
                listener=turn,
                stop_reason=lambda: turn.stop_reason or "stopped",
                reservation=prepared.reservation,
            )
            # Stored before the answer is handed back, so the next ask finds it. A stop that
            # comes meanwhile is too late: the answer is complete and stays so.
            with contextlib.suppress(asyncio.CancelledError):
                await self._remember(turn.cache, provider, request, end.message)
                await self._ended(turn.session_id, end.message)
        finally:
            self._active.pop(turn.session_id, None)
        if turn.stop_reason == "shutdown" and end.error is None:
            end = TurnEnd(message=end.message, error=shutting_down())
        turn.end(end)
        return end

    async def write_queued(
        self,
        answer_id: uuid.UUID,
        provider: Provider,
        request: CompletionRequest,
        plan: CachePlan | None,
        reservation: Reservation | None = None,
    ) -> MessageStatus | None:
        """A queue worker's job: writes a queued answer, unless it was deleted before or while
        it was written, or already ended by an earlier try (None then)."""
        async with self._parts.database.session() as db:
            answer = await db.get(Message, answer_id)
        if answer is None or answer.status != "streaming":
            if self._parts.budgets is not None:
                await self._parts.budgets.release(reservation)
            return None
        if answer.content:
            answer.content = ""  # an earlier try died part-way; this one starts over
        stream = await self._queued_stream(answer)
        end = await self._writer.write(
            answer=answer, provider=provider, request=request, listener=stream,
            reservation=reservation,
        )  # fmt: skip
        await self._remember(plan, provider, request, end.message)
        await self._ended(answer.session_id, end.message)
        stream.end(end)
        if not await self._answer_exists(answer_id):
            return None  # erased meanwhile: the worker leaves no result of it behind either
        return end.message.status

    async def _queued_stream(self, answer: Message) -> AnswerEvents:
        """A queued answer's events, numbered after those already logged (its message_start,
        logged by the API process that queued it, and an earlier try's, whose text it drops)."""
        logged = await self.log.read(answer.id, after=0) or []
        stream = AnswerEvents(self.log, answer.id, last_id=logged[-1].id if logged else 0)
        stream.claim()
        if not logged:
            stream.start(answer, None)
        elif any(event.name == "delta" for event in logged):
            stream.on_replace("")
        return stream

    async def _remember(
        self,
        plan: CachePlan | None,
        provider: Provider,
        request: CompletionRequest,
        answer: Message,
    ) -> None:
        cache = self._parts.cache
        if plan is None or cache is None:
            return
        stored = await cache.remember(
            plan, sent_question=request.messages[-1].content, provider_id=provider.id,
            answer=answer,
        )  # fmt: skip
        # Checked after the entry is stored: an erasure that deleted the answer meanwhile
        # either is seen here or finds the entry in its user's index, never neither.
        if stored and not await self._answer_exists(answer.id):
            try:
                await cache.forget_entry(plan)
            except Exception:
                log.warning("dropping the cached answer of an erased turn failed", exc_info=True)

    async def _answer_exists(self, answer_id: uuid.UUID) -> bool:
        async with self._parts.database.session() as db:
            found = await db.scalar(select(Message.id).where(Message.id == answer_id))
        return found is not None

    async def _replay(self, turn: Turn) -> TurnEnd:
        """A cached answer, complete in its row already: one delta with the whole text."""
        turn.on_text(turn.answer.content)
        end = TurnEnd(message=turn.answer, error=None)
        turn.end(end)
        return end


def shutting_down() -> ServiceUnavailable:
    return ServiceUnavailable(
        "this chatgate process is shutting down: the answer so far is kept; resume its events "
        "(GET /v1/sessions/{id}/messages/{message_id}/events) or ask again",
        code="server_shutting_down",
    )
