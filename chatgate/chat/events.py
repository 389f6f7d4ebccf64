"""An answer's server-sent events: numbered once, by whoever writes the answer, then logged (for
resuming from any process) and handed to the live stream of this process, if one watches.

The events: message_start, citations (an assistant with knowledge bases: the passages its engine
was given; a Dify app's own come just before the end), delta (new text only; `"replace": true`
when the engine rewrote the answer so far, e.g. Dify's output moderation), and message_end or
error. `resume_events` replays an answer's events after a given id, then tails them until the
end, from the log, or, where there is none (expired, or never logged), from the stored answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import select

from chatgate.chat.answers import TurnEnd
from chatgate.chat.models import Message
from chatgate.chat.schemas import MessageOut
from chatgate.chat.streamlog import Deliver, EventSink, LogEvent, StreamLog
from chatgate.core.db import Database
from chatgate.core.errors import AppError, error_body

END_EVENTS = frozenset({"message_end", "error"})
# A resuming client waits this long for each new event before the stored answer is checked.
TAIL_WAIT = 2.0
# A comment line this often keeps a silent stream's connection open through proxies.
KEEP_ALIVE = 15.0
KEEP_ALIVE_COMMENT = b": keep-alive\n\n"


def format_event(event: LogEvent) -> bytes:
    data = orjson.dumps(event.data)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.name.encode(), data)


def message_json(message: Message) -> dict[str, Any]:
    return MessageOut.of(message).model_dump(mode="json")


def end_event(event_id: int, message: Message, error: AppError | None) -> LogEvent:
    if error is not None:
        body = error_body(error.code, error.message)
        return LogEvent(event_id, "error", {**body, "message": message_json(message)})
    usage = message.usage or {}
    return LogEvent(event_id, "message_end", {"message": message_json(message), "usage": usage})


class AnswerEvents:
    """Numbers one answer's events, logs each, and gives it to the live stream (`live`)."""

    def __init__(
        self,
        log: EventSink,
        answer_id: uuid.UUID,
        *,
        live: asyncio.Queue[LogEvent] | None = None,
        last_id: int = 0,
    ) -> None:
        self._log = log
        self._answer_id = answer_id
        # Events reach the live stream once logged (`StreamLog.append`).
        self._deliver = live.put_nowait if live is not None else None
        self.last_id = last_id

    def claim(self) -> None:
        """This process writes the answer from now on (its death then ends the answer)."""
        self._log.begin(self._answer_id)

    def emit(self, name: str, data: dict[str, Any]) -> LogEvent:
        self.last_id += 1
        event = LogEvent(self.last_id, name, data)
        self._log.append(self._answer_id, event, self._deliver)
        return event

    def start(self, answer: Message, user_message_id: uuid.UUID | None) -> None:
        self.emit(
            "message_start",
            {
                "session_id": str(answer.session_id),
                "user_message_id": str(user_message_id) if user_message_id else None,
                "message_id": str(answer.id),
            },
        )
        if answer.citations is not None:
            # The passages the engine was given, before it says anything about them.
            self.on_citations(answer.citations)

    def on_text(self, text: str) -> None:
        self.emit("delta", {"text": text})

    def on_replace(self, text: str) -> None:
        self.emit("delta", {"text": text, "replace": True})

    def on_citations(self, citations: list[dict[str, Any]]) -> None:
        self.emit("citations", {"citations": citations})

    def end(self, end: TurnEnd) -> None:
        self.last_id += 1
        event = end_event(self.last_id, end.message, end.error)
        self._log.append(self._answer_id, event, self._deliver)
        self._log.finish(self._answer_id)


async def resume_events(
    *, log: StreamLog, database: Database, answer: Message, after: int
) -> AsyncIterator[bytes]:
    """The answer's events after `after`, then the live ones until its end; from any process.
    A silent wait sends a keep-alive comment every KEEP_ALIVE seconds."""
    events = await log.read(answer.id, after=after)
    if events == [] and after and await _ended_at(log, answer.id, after):
        return  # the client has the end already
    waited = 0.0
    while True:
        for event in events or ():
            yield format_event(event)
            after = event.id
            if event.name in END_EVENTS:
                return
        if not events:
            stored = await _stored(database, answer.id)
            if stored is None:
                return
            if stored.status != "streaming":
                # Ended with no end in the log (expired, never logged, or its writer's last
                # events lost): the stored answer ends it, its whole text replacing the client's.
                if not (events := await log.read(answer.id, after=after)):
                    async for event in _replay_stored(database, stored, after, events is None):
                        yield format_event(event)
                    return
                continue
            waited += TAIL_WAIT
            if waited >= KEEP_ALIVE:
                waited = 0.0
                yield KEEP_ALIVE_COMMENT
        if events is None:
            # Written by a process whose log this one cannot read: its end is waited for.
            await asyncio.sleep(TAIL_WAIT)
            events = await log.read(answer.id, after=after)
        else:
            events = await log.read(answer.id, after=after, wait=TAIL_WAIT)


async def _ended_at(log: StreamLog, answer_id: uuid.UUID, event_id: int) -> bool:
    """Whether the logged event `event_id` is the answer's end."""
    found = await log.read(answer_id, after=event_id - 1) or []
    return bool(found) and found[0].id == event_id and found[0].name in END_EVENTS


async def _replay_stored(
    database: Database, stored: Message, after: int, unlogged: bool
) -> AsyncIterator[LogEvent]:
    """An ended answer from its row: whole from the start when it has no log, else (or after
    an id) its whole text replacing what the client has, then its end."""
    if after == 0 and unlogged:
        replay = _Collected()
        events = AnswerEvents(replay, stored.id)
        events.start(stored, await _user_message_id(database, stored))
        for event in replay.events:
            yield event
        after = events.last_id
    async for event in _stored_end(stored, after):
        yield event


async def _stored_end(stored: Message, after: int) -> AsyncIterator[LogEvent]:
    yield LogEvent(after + 1, "delta", {"text": stored.content, "replace": True})
    yield end_event(after + 2, stored, stored_error(stored))


def stored_error(stored: Message) -> AppError | None:
    if stored.status == "complete" or not stored.error:
        return None
    return AppError(stored.error.get("message", ""), code=stored.error.get("code", "failed"))


async def _stored(database: Database, answer_id: uuid.UUID) -> Message | None:
    async with database.session() as db:
        return await db.get(Message, answer_id)


async def _user_message_id(database: Database, answer: Message) -> uuid.UUID | None:
    """The question an answer answers: the user's message just before it in its session."""
    async with database.session() as db:
        return await db.scalar(
            select(Message.id)
            .where(
                Message.session_id == answer.session_id,
                Message.role == "user",
                Message.id < answer.id,
            )
            .order_by(Message.id.desc())
            .limit(1)
        )


class _Collected:
    """A log that only collects: for events made to be sent once, from the stored answer."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def begin(self, answer_id: uuid.UUID) -> None: ...

    def append(self, answer_id: uuid.UUID, event: LogEvent, deliver: Deliver | None = None) -> None:
        self.events.append(event)

    def finish(self, answer_id: uuid.UUID) -> None: ...
