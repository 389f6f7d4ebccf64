"""A turn: the user's message, then the assistant's answer, produced by a task of its own.

The answer runs apart from the HTTP response that watches it, so that a stop, a disconnect or an
engine failure all end the same way: the text produced so far is saved with a final status.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import update

from chatgate.auth.service import User
from chatgate.chat.context import build_messages, history_budget, load_context
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.service import TITLE_LENGTH, bump_session
from chatgate.core.config import AssistantConfig, Settings
from chatgate.core.db import Database
from chatgate.core.errors import AppError, Conflict
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.core.tracing import current_trace_id
from chatgate.providers.base import CompletionRequest, Provider, ProviderError, Usage

log = logging.getLogger("chatgate.chat.turns")
STALE_AFTER = timedelta(minutes=15)
StopReason = Literal["stopped", "client_disconnected", "shutdown"]


@dataclass(slots=True)
class TurnEnd:
    message: Message
    error: AppError | None


@dataclass(eq=False)
class Turn:
    session_id: uuid.UUID
    user_message: Message
    answer: Message
    events: asyncio.Queue[str | TurnEnd] = field(default_factory=asyncio.Queue)
    first_output: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: StopReason | None = None
    task: asyncio.Task[TurnEnd] | None = None
    usage: Usage | None = None

    def stop(self, reason: StopReason) -> None:
        if self.task is not None and not self.task.done():
            self.stop_reason = self.stop_reason or reason
            self.task.cancel()

    async def result(self) -> TurnEnd:
        assert self.task is not None
        return await asyncio.shield(self.task)


class TurnManager:
    """Starts, tracks and stops the answers running in this process."""

    def __init__(self, *, database: Database, settings: Settings) -> None:
        self._database = database
        self._flush_every = settings.stream_flush_seconds
        self._active: dict[uuid.UUID, Turn] = {}

    async def begin(
        self,
        *,
        user: User,
        session: ChatSession,
        assistant: AssistantConfig,
        provider: Provider,
        content: str,
    ) -> Turn:
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
                id=new_id(),
                session_id=session.id,
                role="user",
                content=content,
                status="complete",
                token_count=user_tokens,
                trace_id=trace_id,
                created_at=now,
                updated_at=now,
            )
            answer = Message(
                id=new_id(),
                session_id=session.id,
                role="assistant",
                content="",
                status="streaming",
                token_count=0,
                model=assistant.model,
                trace_id=trace_id,
                created_at=now,
                updated_at=now,
            )
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
        turn = Turn(session_id=session.id, user_message=user_message, answer=answer)
        self._active[session.id] = turn
        turn.task = asyncio.create_task(self._run(turn, provider, request))
        return turn

    def running(self, session_id: uuid.UUID) -> Turn | None:
        return self._active.get(session_id)

    async def shutdown(self) -> None:
        turns = list(self._active.values())
        for turn in turns:
            turn.stop("shutdown")
        await asyncio.gather(*(t.task for t in turns if t.task), return_exceptions=True)

    async def _run(self, turn: Turn, provider: Provider, request: CompletionRequest) -> TurnEnd:
        loop = asyncio.get_running_loop()
        parts: list[str] = []
        status: str = "complete"
        error: AppError | None = None
        next_flush = loop.time() + self._flush_every
        try:
            async for chunk in provider.stream(request):
                if chunk.text:
                    parts.append(chunk.text)
                    turn.events.put_nowait(chunk.text)
                    turn.first_output.set()
                    if loop.time() >= next_flush:
                        next_flush = loop.time() + self._flush_every
                        await self._save_partial(turn.answer.id, "".join(parts))
                if chunk.usage:
                    turn.usage = chunk.usage
                if chunk.session_state:
                    await self._save_session_state(
                        turn.session_id, provider.id, chunk.session_state
                    )
        except asyncio.CancelledError:
            status = "interrupted"
        except ProviderError as exc:
            status, error = "failed", exc
        except Exception:
            log.exception("answer failed", extra={"message_id": str(turn.answer.id)})
            status, error = "failed", AppError("the answer failed unexpectedly")
        text = "".join(parts)
        end = await asyncio.shield(self._finish(turn, provider, text, status, error))
        self._active.pop(turn.session_id, None)
        turn.events.put_nowait(end)
        turn.first_output.set()
        return end

    async def _save_partial(self, message_id: uuid.UUID, text: str) -> None:
        async with self._database.session() as db:
            await db.execute(
                update(Message)
                .where(Message.id == message_id)
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

    async def _finish(
        self, turn: Turn, provider: Provider, text: str, status: str, error: AppError | None
    ) -> TurnEnd:
        answer = turn.answer
        usage = turn.usage
        answer.content = text
        answer.status = status
        answer.token_count = (
            usage.completion_tokens
            if usage and usage.completion_tokens
            else provider.count_tokens(text)
        )
        answer.usage = usage.as_dict() if usage else None
        answer.error = _error_record(turn, error)
        answer.updated_at = utcnow()
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
                    updated_at=answer.updated_at,
                )
            )
            await db.commit()
        return TurnEnd(message=answer, error=error)


def _error_record(turn: Turn, error: AppError | None) -> dict[str, Any] | None:
    if error is not None:
        return {"code": error.code, "message": error.message}
    if turn.stop_reason is not None:
        return {"code": turn.stop_reason, "message": f"the answer ended early: {turn.stop_reason}"}
    return None


async def recover_unfinished_answers(database: Database, *, all_rows: bool) -> int:
    """Marks answers left `streaming` by a process that died as `interrupted`, keeping their text.

    A single embedded process owns every row; with several processes only rows silent for longer
    than any answer may take are recovered.
    """
    condition = Message.status == "streaming"
    if not all_rows:
        condition &= Message.updated_at < utcnow() - STALE_AFTER
    async with database.session() as db:
        result = await db.execute(
            update(Message)
            .where(condition)
            .values(
                status="interrupted",
                error={"code": "process_restarted", "message": "the answer's process ended"},
                updated_at=utcnow(),
            )
        )
        await db.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
