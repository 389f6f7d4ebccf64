"""Writing an answer: an engine's chunks into the answer's row, whoever runs it.

Used by in-process turns (which also feed a live stream) and by queue workers (which feed none).
However the answer ends (done, stopped, client gone, engine failure) the text produced so far
is saved with its final status. The database may blink meanwhile (a restart, a lock): text saved
along the way is best effort, and the end is retried, so the stream still ends and the row does
not stay `streaming` to lock its session.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, update

from chatgate.budgets.service import Budgets
from chatgate.budgets.store import Reservation
from chatgate.chat.models import ChatSession, Message, MessageStatus
from chatgate.core.db import Database
from chatgate.core.errors import AppError, ServiceUnavailable
from chatgate.core.time import utcnow
from chatgate.providers.base import CompletionRequest, Provider, ProviderError, Usage
from chatgate.providers.fallback import Provenance
from chatgate.ratelimit.service import RateLimiter

log = logging.getLogger("chatgate.chat.answers")
STALE_AFTER = timedelta(minutes=15)
# How long a stream waits for its answer's end to be saved while the database blinks (a
# restart, a lock) before it ends anyway with `answer_not_saved`, the save going on behind it.
SAVE_WITHIN = 10.0
MIN_TRY = 1.0


@dataclass(slots=True)
class TurnEnd:
    message: Message
    error: AppError | None


class AnswerListener(Protocol):
    """Who watches an answer as it is written (a live stream); None for queued tasks."""

    def on_text(self, text: str) -> None: ...

    def on_replace(self, text: str) -> None: ...

    def on_citations(self, citations: list[dict[str, Any]]) -> None: ...


class AnswerWriter:
    def __init__(
        self,
        *,
        database: Database,
        flush_every: float,
        limiter: RateLimiter | None = None,
        save_within: float = SAVE_WITHIN,
        budgets: Budgets | None = None,
    ) -> None:
        self._database = database
        self._flush_every = flush_every
        self._limiter = limiter
        self._budgets = budgets
        self._save_within = save_within
        # Saves running beside the streams (flushes, late ends), and the answers being flushed.
        self._saving: set[asyncio.Task[None]] = set()
        self._flushing: set[uuid.UUID] = set()

    async def write(
        self,
        *,
        answer: Message,
        provider: Provider,
        request: CompletionRequest,
        listener: AnswerListener | None = None,
        stop_reason: Callable[[], str] = lambda: "stopped",
        reservation: Reservation | None = None,
    ) -> TurnEnd:
        """Streams the answer into its row; a cancellation ends it `interrupted`, with the
        reason `stop_reason()` gives (the canceller knows why).

        Never raises: however the answer ends, its end is saved (retried while the database
        blinks) and handed back, so a live stream always gets its end event."""
        loop = asyncio.get_running_loop()
        parts: list[str] = []
        usage: Usage | None = None
        status: MessageStatus = "complete"
        error: AppError | None = None
        next_flush = loop.time() + self._flush_every
        # Which engine wrote the text, and whether as a fallback (marked by the assistant's chain).
        source = Provenance(provider.id)
        try:
            async for chunk in provider.stream(request):
                source.see(chunk)
                if "\x00" in chunk.text:
                    chunk.text = storable(chunk.text)
                if chunk.replace:
                    # Saved at once: the text it replaces must not outlive the replacement.
                    parts = [chunk.text]
                    if listener:
                        listener.on_replace(chunk.text)
                    await self._try(self._save_partial(answer.id, chunk.text), answer, "replace")
                elif chunk.text:
                    parts.append(chunk.text)
                    if listener:
                        listener.on_text(chunk.text)
                    if loop.time() >= next_flush:
                        next_flush = loop.time() + self._flush_every
                        self._flush(answer.id, "".join(parts))
                usage = chunk.usage or usage
                if chunk.citations is not None:
                    # The engine's own (a Dify app's): they replace any the answer began with.
                    answer.citations = chunk.citations
                    if listener:
                        listener.on_citations(chunk.citations)
                if chunk.session_state:
                    state = self._save_session_state(
                        answer.session_id, chunk.provider or provider.id, chunk.session_state
                    )
                    await self._try(state, answer, "engine state")
        except asyncio.CancelledError:
            status = "interrupted"
        except ProviderError as exc:
            status, error = "failed", exc
        except Exception:
            log.exception("answer failed", extra={"message_id": str(answer.id)})
            status, error = "failed", AppError("the answer failed unexpectedly")
        reason = stop_reason() if status == "interrupted" else ""
        answer.provider, answer.fallback = source.provider, source.fallback
        _settle(answer, provider, "".join(parts), status, error, usage, reason)
        ending = asyncio.ensure_future(self._end(answer, error, request, usage, reservation))
        while True:
            # A second stop (the client gone, then shutdown) must not lose the end: saving it
            # is bounded by `save_within`, so it is awaited whatever asks to stop meanwhile.
            try:
                return await asyncio.shield(ending)
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None:
                    task.uncancel()

    async def close(self, *, grace: float = 5.0) -> None:
        """Gives saves still in flight (answers whose end waits for the database) a last
        chance, then cancels them; their rows are recovered at the next start-up."""
        pending = [t for t in self._saving if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _end(
        self,
        answer: Message,
        error: AppError | None,
        request: CompletionRequest,
        usage: Usage | None,
        reservation: Reservation | None = None,
    ) -> TurnEnd:
        if self._budgets is not None:  # first: the budget is freed however long the save takes
            answered = answer.token_count if answer.content else 0
            await self._budgets.settle(reservation, usage, answered)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._save_within
        delay = 0.1
        while True:
            try:
                # Each try bounded too: a stalled connection must not outlast the window.
                async with asyncio.timeout(max(deadline - loop.time(), MIN_TRY)):
                    await self._save_end(answer)
                break
            except Exception:
                if loop.time() + delay >= deadline:
                    log.exception(
                        "the answer's end could not be saved in time; still trying",
                        extra={"message_id": str(answer.id)},
                    )
                    self._track(self._keep_saving(answer))
                    error = error or answer_not_saved()
                    break
                log.warning(
                    "saving the answer's end failed; retrying", exc_info=True,
                    extra={"message_id": str(answer.id)},
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if self._limiter and usage and request.user and request.assistant_id:
            tokens = usage.prompt_tokens + usage.completion_tokens
            recorded = self._limiter.record_tokens(
                user=request.user, assistant=request.assistant_id, tokens=tokens
            )
            await self._try(recorded, answer, "token count")
        return TurnEnd(message=answer, error=error)

    async def _keep_saving(self, answer: Message) -> None:
        """The end of an answer the database refused for longer than a stream waits: saved as
        soon as the database is back, so its session is not left locked by a `streaming` row."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + STALE_AFTER.total_seconds()
        delay = 1.0
        while loop.time() < give_up:
            await asyncio.sleep(delay)
            try:
                async with asyncio.timeout(SAVE_WITHIN):
                    await self._save_end(answer)
            except Exception:
                delay = min(delay * 2, 10.0)
                continue
            log.info("the answer's end was saved late", extra={"message_id": str(answer.id)})
            return
        log.error("the answer's end was never saved", extra={"message_id": str(answer.id)})

    def _flush(self, message_id: uuid.UUID, text: str) -> None:
        """Saves the text so far beside the stream, so a slow database never holds up its
        deltas; skipped while the previous flush of this answer is still being written."""
        if message_id in self._flushing:
            return
        self._flushing.add(message_id)
        task = self._track(self._save_partial(message_id, text))
        task.add_done_callback(lambda t: self._flushed(message_id, t))

    def _flushed(self, message_id: uuid.UUID, task: asyncio.Task[None]) -> None:
        self._flushing.discard(message_id)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning(
                "saving the answer so far failed; the next save carries it", exc_info=exc,
                extra={"message_id": str(message_id)},
            )  # fmt: skip

    def _track(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)
        return task

    @staticmethod
    async def _try(work: Coroutine[Any, Any, None], answer: Message, what: str) -> None:
        """A save on the way that may fail without failing the answer: its end saves it all."""
        try:
            await work
        except Exception:
            log.warning(
                f"saving the {what} failed; the answer goes on", exc_info=True,
                extra={"message_id": str(answer.id)},
            )  # fmt: skip

    async def _save_partial(self, message_id: uuid.UUID, text: str) -> None:
        # Only while streaming: a flush that lands after the end must not undo it.
        async with self._database.session() as db:
            await db.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == "streaming")
                .values(content=text, updated_at=utcnow())
            )
            await db.commit()

    async def _save_session_state(
        self, session_id: uuid.UUID, provider_id: str, state: dict[str, str]
    ) -> None:
        async with self._database.session() as db:
            session = await db.get(ChatSession, session_id)
            if session is None:
                return
            stored = dict(session.provider_state or {})
            stored[provider_id] = {**stored.get(provider_id, {}), **state}
            session.provider_state = stored
            await db.commit()

    async def _save_end(self, answer: Message) -> None:
        async with self._database.session() as db:
            await db.execute(
                update(Message)
                .where(Message.id == answer.id)
                .values(
                    content=answer.content,
                    status=answer.status,
                    token_count=answer.token_count,
                    usage=answer.usage,
                    error=answer.error,
                    provider=answer.provider,
                    fallback=answer.fallback,
                    citations=answer.citations,
                    updated_at=answer.updated_at,
                )
            )
            await db.commit()


def _settle(
    answer: Message,
    provider: Provider,
    text: str,
    status: MessageStatus,
    error: AppError | None,
    usage: Usage | None,
    stop_reason: str,
) -> None:
    """The answer's final fields, set on the row object before any attempt to save them."""
    answer.content = text
    answer.status = status
    answer.token_count = (
        usage.completion_tokens
        if usage and usage.completion_tokens
        else provider.count_tokens(text)
    )
    answer.usage = usage.as_dict() if usage else None
    answer.error = _error_record(status, error, stop_reason)
    answer.updated_at = utcnow()


def answer_not_saved() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the answer was written but the database did not take it in time; it is saved as soon"
        " as the database answers",
        code="answer_not_saved",
    )


def _error_record(status: str, error: AppError | None, stop_reason: str) -> dict[str, Any] | None:
    if error is not None:
        return {"code": error.code, "message": error.message}
    if status == "interrupted":
        return {"code": stop_reason, "message": f"the answer ended early: {stop_reason}"}
    return None


def storable(text: str) -> str:
    """Engine text as a database keeps it: PostgreSQL refuses NUL in text, which would lose the
    whole answer, so each becomes U+FFFD, the character for one that could not be kept."""
    return text.replace("\x00", "\ufffd")


async def recover_unfinished_answers(
    database: Database, *, all_rows: bool, session_id: uuid.UUID | None = None
) -> int:
    """Marks answers left `streaming` by a process that died as `interrupted`, keeping their text
    (those of one session, or all).

    A single embedded process owns every row; with several processes (or queue workers) only
    rows silent for longer than any answer may take are recovered.
    """
    condition = Message.status == "streaming"
    if not all_rows:
        condition &= Message.updated_at < utcnow() - STALE_AFTER
    if session_id is not None:
        condition &= Message.session_id == session_id
    error = {"code": "process_restarted", "message": "the answer's process ended"}
    return await _interrupt(database, condition, error)


async def interrupt_answer(
    database: Database, answer_id: uuid.UUID, *, reason: str, content: str | None = None
) -> int:
    """Ends one answer still `streaming` as `interrupted`, keeping its text, or with `content`
    (an answer that no process writes: queued and stopped before any worker took it, or its
    writer dead, its text rebuilt from its events)."""
    condition = (Message.id == answer_id) & (Message.status == "streaming")
    error = _error_record("interrupted", None, reason)
    return await _interrupt(database, condition, error, content)


async def _interrupt(
    database: Database,
    condition: ColumnElement[bool],
    error: dict[str, Any] | None,
    content: str | None = None,
) -> int:
    values: dict[str, Any] = {"status": "interrupted", "error": error, "updated_at": utcnow()}
    if content is not None:
        values["content"] = content
    async with database.session() as db:
        result = await db.execute(update(Message).where(condition).values(**values))
        await db.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
