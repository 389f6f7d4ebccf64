"""Writing an answer: an engine's chunks into the answer's row, whoever runs it.

Used by in-process turns (which also feed a live stream) and by queue workers (which feed none).
However the answer ends (done, stopped, client gone, engine failure) the text produced so far
is saved with its final status.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import update

from chatgate.chat.models import ChatSession, Message, MessageStatus
from chatgate.core.db import Database
from chatgate.core.errors import AppError
from chatgate.core.time import utcnow
from chatgate.providers.base import CompletionRequest, Provider, ProviderError, Usage
from chatgate.providers.fallback import Provenance
from chatgate.ratelimit.service import RateLimiter

log = logging.getLogger("chatgate.chat.answers")
STALE_AFTER = timedelta(minutes=15)


@dataclass(slots=True)
class TurnEnd:
    message: Message
    error: AppError | None


class AnswerListener(Protocol):
    """Who watches an answer as it is written (a live stream); None for queued tasks."""

    def on_text(self, text: str) -> None: ...

    def on_replace(self, text: str) -> None: ...


class AnswerWriter:
    def __init__(
        self, *, database: Database, flush_every: float, limiter: RateLimiter | None = None
    ) -> None:
        self._database = database
        self._flush_every = flush_every
        self._limiter = limiter

    async def write(
        self,
        *,
        answer: Message,
        provider: Provider,
        request: CompletionRequest,
        listener: AnswerListener | None = None,
        stop_reason: Callable[[], str] = lambda: "stopped",
    ) -> TurnEnd:
        """Streams the answer into its row; a cancellation ends it `interrupted`, with the
        reason `stop_reason()` gives (the canceller knows why)."""
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
                    await self._save_partial(answer.id, chunk.text)
                elif chunk.text:
                    parts.append(chunk.text)
                    if listener:
                        listener.on_text(chunk.text)
                    if loop.time() >= next_flush:
                        next_flush = loop.time() + self._flush_every
                        await self._save_partial(answer.id, "".join(parts))
                usage = chunk.usage or usage
                if chunk.session_state:
                    await self._save_session_state(
                        answer.session_id, chunk.provider or provider.id, chunk.session_state
                    )
        except asyncio.CancelledError:
            status = "interrupted"
        except ProviderError as exc:
            status, error = "failed", exc
        except Exception:
            log.exception("answer failed", extra={"message_id": str(answer.id)})
            status, error = "failed", AppError("the answer failed unexpectedly")
        reason = stop_reason() if status == "interrupted" else ""
        answer.provider, answer.fallback = source.provider, source.fallback
        end = self._finish(answer, provider, "".join(parts), status, error, usage, reason)
        finished = await asyncio.shield(end)
        if self._limiter and usage and request.user and request.assistant_id:
            await self._limiter.record_tokens(
                user=request.user,
                assistant=request.assistant_id,
                tokens=usage.prompt_tokens + usage.completion_tokens,
            )
        return finished

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
        self,
        answer: Message,
        provider: Provider,
        text: str,
        status: MessageStatus,
        error: AppError | None,
        usage: Usage | None,
        stop_reason: str,
    ) -> TurnEnd:
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
                    updated_at=answer.updated_at,
                )
            )
            await db.commit()
        return TurnEnd(message=answer, error=error)


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
