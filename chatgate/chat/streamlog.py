"""Per-answer event logs: every event a streamed (or queued) answer sends, kept so that a client
can resume it from any process (`GET /v1/sessions/{id}/messages/{message_id}/events`).

With Redis a log is one Redis stream per answer whose entry ids are the events' own (`0-N`), so
`Last-Event-ID: N` reads as "entries after 0-N". An entry's data is sealed with the answer's
user's data key, as the stored answer is. Appends cost the answer no round trip: they are
queued and sent in pipelines by one task per process, in order; a log lives an hour past its
last write while it grows, and `stream_log_keep_seconds` once its answer has ended. Which
process writes each answer is kept beside the logs (`WRITERS_KEY`), so that the survivors of a
process that died can end its answers (`chat/liveness.py`).

On the embedded default (one process) the logs are kept in memory, as many as `MAX_KEPT` ended
ones at most, each for `stream_log_keep_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import orjson
from redis.asyncio import Redis

from chatgate.core.redis import REDIS_ERRORS, RedisOutage
from chatgate.vault.sealed import open_value, seal_value

log = logging.getLogger("chatgate.chat.streamlog")
WRITERS_KEY = "chatgate:answers:writers"
# While an answer is written its log outlives any silence an engine may keep.
LIVE_MS = 3_600_000
MAX_KEPT = 1_000
READ_BATCH = 500


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One server-sent event of an answer: its id, its name and its data."""

    id: int
    name: str
    data: dict[str, Any]


Deliver = Callable[["LogEvent"], None]


class EventSink(Protocol):
    """Where an answer's events go as they are sent."""

    def begin(self, answer_id: uuid.UUID) -> None:
        """This process writes the answer from now on."""

    def append(self, answer_id: uuid.UUID, event: LogEvent, deliver: Deliver | None = None) -> None:
        """Logs the event, in order after the ones before it, without waiting; then (once it is
        logged, or could not be) hands it to `deliver`: a client is sent only logged events, so
        whatever it saw outlives this process."""

    def finish(self, answer_id: uuid.UUID) -> None:
        """The answer has sent its last event: the log is kept for resuming clients a while."""


class StreamLog(EventSink, Protocol):
    """An answer's events as sent, read back by resuming clients."""

    async def read(
        self, answer_id: uuid.UUID, *, after: int, wait: float = 0
    ) -> list[LogEvent] | None:
        """The events after `after`, waiting up to `wait` seconds for one when there is none;
        None when there is no log of the answer (never logged, or expired)."""

    async def flush(self) -> None:
        """Waits until every event appended so far is logged (or could not be)."""

    async def close(self) -> None: ...


class _Op(NamedTuple):
    """One step of the Redis log's queue, sent in order."""

    kind: Literal["begin", "event", "finish"]
    answer_id: str
    event: LogEvent | None = None
    sealed: str = ""
    deliver: Deliver | None = None


def log_key(answer_id: uuid.UUID | str) -> str:
    return f"chatgate:answer:{answer_id}:events"


@dataclass(eq=False)
class _Kept:
    events: list[LogEvent] = field(default_factory=list)
    # Set when the log grows; made only while a reader waits (a delta costs no event otherwise).
    grew: asyncio.Event | None = None
    ended_at: float | None = None


class MemoryStreamLog:
    """The logs of one process (the embedded default), in its memory."""

    def __init__(self, *, keep_seconds: float, max_kept: int = MAX_KEPT) -> None:
        self._keep_seconds = keep_seconds
        self._max_kept = max_kept
        self._logs: OrderedDict[uuid.UUID, _Kept] = OrderedDict()

    def begin(self, answer_id: uuid.UUID) -> None:
        self._logs.setdefault(answer_id, _Kept())

    def append(self, answer_id: uuid.UUID, event: LogEvent, deliver: Deliver | None = None) -> None:
        kept = self._logs.get(answer_id)
        if kept is None:
            kept = self._logs[answer_id] = _Kept()
        kept.events.append(event)
        if kept.grew is not None:
            kept.grew.set()
            kept.grew = None
        if deliver is not None:
            deliver(event)

    def finish(self, answer_id: uuid.UUID) -> None:
        kept = self._logs.get(answer_id)
        if kept is not None:
            kept.ended_at = time.monotonic()
        self._forget_old()

    async def read(
        self, answer_id: uuid.UUID, *, after: int, wait: float = 0
    ) -> list[LogEvent] | None:
        kept = self._logs.get(answer_id)
        if kept is None or self._expired(kept):
            return None
        newer = _after(kept.events, after)
        if newer or wait <= 0 or kept.ended_at is not None:
            return newer
        if kept.grew is None:
            kept.grew = asyncio.Event()
        grew = kept.grew
        try:
            await asyncio.wait_for(grew.wait(), wait)
        except TimeoutError:
            return []
        return _after(kept.events, after)

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        self._logs.clear()

    def _expired(self, kept: _Kept) -> bool:
        return kept.ended_at is not None and time.monotonic() - kept.ended_at > self._keep_seconds

    def _forget_old(self) -> None:
        ended = [k for k, v in self._logs.items() if v.ended_at is not None]
        excess = len(ended) - self._max_kept
        for answer_id in ended:
            if excess > 0 or self._expired(self._logs[answer_id]):
                del self._logs[answer_id]
                excess -= 1


def _after(events: list[LogEvent], after: int) -> list[LogEvent]:
    # Ids run 1, 2, 3… from the first event, so the position of `after` is known.
    start = max(after - events[0].id + 1, 0) if events else 0
    return events[start:]


class RedisStreamLog:
    """The logs of a deployment, in Redis: any process reads what any other wrote."""

    def __init__(self, redis: Redis, tail: Redis, *, process_id: str, keep_seconds: float) -> None:
        self._redis = redis
        self._tail = tail  # blocking reads, on connections whose timeout outlasts them
        self._process_id = process_id
        self._keep_ms = max(int(keep_seconds * 1000), 1)
        self._pending: list[_Op] = []
        self._sending: asyncio.Task[None] | None = None
        # After a failure, events skip the log for a while: each would wait out the timeout.
        self._outage = RedisOutage()

    def begin(self, answer_id: uuid.UUID) -> None:
        self._queue(_Op("begin", str(answer_id)))

    def append(self, answer_id: uuid.UUID, event: LogEvent, deliver: Deliver | None = None) -> None:
        # Sealed here, in the answer's own context, which knows its user's key.
        sealed = seal_value(orjson.dumps(event.data).decode())
        self._queue(_Op("event", str(answer_id), event, sealed, deliver))

    def finish(self, answer_id: uuid.UUID) -> None:
        self._queue(_Op("finish", str(answer_id)))

    async def read(
        self, answer_id: uuid.UUID, *, after: int, wait: float = 0
    ) -> list[LogEvent] | None:
        """As the protocol says; a Redis that cannot answer reads as no log (the stored answer
        is replayed instead)."""
        try:
            return await self._read(log_key(answer_id), after, wait)
        except REDIS_ERRORS as exc:
            log.warning("an answer's events cannot be read: %s", exc or type(exc).__name__)
            return None

    async def _read(self, key: str, after: int, wait: float) -> list[LogEvent] | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(key, min=f"0-{after + 1}", count=READ_BATCH)
            pipe.exists(key)
            entries, exists = await pipe.execute()
        if not exists:
            return None
        if entries or wait <= 0:
            return [_event(entry) for entry in entries]
        replies = await self._tail.xread(
            {key: f"0-{after}"}, count=READ_BATCH, block=max(int(wait * 1000), 1)
        )
        return [_event(entry) for _, found in replies for entry in found]

    async def flush(self) -> None:
        while self._sending is not None and not self._sending.done():
            await asyncio.shield(self._sending)

    async def close(self) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self.flush()
        except TimeoutError:
            log.warning("events still unsent at close are not logged")
        await self._tail.aclose()

    def _queue(self, op: _Op) -> None:
        self._pending.append(op)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send(), name="stream-log")

    async def _send(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            if not self._outage.ongoing:
                await self._try_send(batch)
            for op in batch:
                if op.deliver is not None and op.event is not None:
                    op.deliver(op.event)

    async def _try_send(self, batch: list[_Op]) -> None:
        try:
            await self._send_batch(batch)
        except REDIS_ERRORS as exc:
            # Sent to their clients all the same; resuming clients get the stored answer.
            if self._outage.failed():
                log.warning("answer events cannot be logged: %s", exc or type(exc).__name__)
            return
        if self._outage.answered():
            log.info("answer events are logged again")

    async def _send_batch(self, batch: list[_Op]) -> None:
        live: set[str] = set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for kind, answer_id, event, sealed, _ in batch:
                key = log_key(answer_id)
                if kind == "begin":
                    pipe.hset(WRITERS_KEY, answer_id, self._process_id)
                elif kind == "event" and event is not None:
                    fields = {"e": event.name, "d": sealed}
                    pipe.xadd(key, fields, id=f"0-{event.id}")  # type: ignore[arg-type]
                    live.add(key)
                elif kind == "finish":
                    live.discard(key)
                    pipe.pexpire(key, self._keep_ms)
                    pipe.hdel(WRITERS_KEY, answer_id)
            for key in live:
                pipe.pexpire(key, LIVE_MS)
            # An id at or below the last one (an answer written again) fails alone.
            await pipe.execute(raise_on_error=False)


def _event(entry: tuple[bytes, dict[bytes, bytes]]) -> LogEvent:
    entry_id, fields = entry
    data = open_value(fields[b"d"].decode())
    return LogEvent(int(entry_id.split(b"-")[1]), fields[b"e"].decode(), orjson.loads(data))


def answer_text(events: list[LogEvent]) -> str | None:
    """The answer's text as its events built it (None when they hold none of it)."""
    parts: list[str] = []
    seen = False
    for event in events:
        if event.name == "delta":
            seen = True
            if event.data.get("replace"):
                parts = []
            parts.append(event.data.get("text", ""))
    return "".join(parts) if seen else None
