"""Which processes of a deployment are alive, and what happens to the answers of one that is not.

Every process with Redis (each `chatgate serve` worker, each `chatgate worker`) says it is alive
once a second (`PROCESSES_KEY`, a sorted set of last heartbeats) and names the answers it writes
(`streamlog.WRITERS_KEY`). Every few seconds each looks for answers whose writer has been silent
for `DEAD_AFTER`: it claims one by removing it from the writers (only one process can), and ends
it `interrupted`, keeping the text its events had built (its log outlives the process), with an
`error` event that ends the streams of clients resuming it. So a process killed outright costs
no text, and its answers end within seconds, not when they are stale for `STALE_AFTER`.

Stops go the same way: `request_stop` adds the answer to a short Redis stream that every process
tails, and the one writing it stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from redis.asyncio import Redis

from chatgate.chat.answers import interrupt_answer
from chatgate.chat.events import END_EVENTS, end_event, stored_error
from chatgate.chat.models import Message
from chatgate.chat.service import answer_owner
from chatgate.chat.streamlog import WRITERS_KEY, StreamLog, answer_text
from chatgate.core.db import Database
from chatgate.core.redis import REDIS_ERRORS
from chatgate.vault.service import Vault

PROCESSES_KEY = "chatgate:processes"
STOPS_KEY = "chatgate:answers:stops"
HEARTBEAT = 1.0
DEAD_AFTER = 10.0
SWEEP_EVERY = 3.0
KEEP_STOPS = 1_000
log = logging.getLogger("chatgate.chat.liveness")


class Liveness:
    def __init__(
        self,
        redis: Redis,
        tail: Redis,
        *,
        process_id: str,
        database: Database,
        log: StreamLog,
        vault: Vault,
        dead_after: float = DEAD_AFTER,
    ) -> None:
        self._redis = redis
        self._tail = tail  # blocking reads of the stops
        self.process_id = process_id
        self._database = database
        self._log = log
        self._vault = vault
        self._dead_after = dead_after
        self._on_stop: Callable[[uuid.UUID], object] = lambda _: None
        self._task: asyncio.Task[None] | None = None
        self._last_stop = "$"

    def on_stop(self, stop: Callable[[uuid.UUID], object]) -> None:
        """What this process does when asked to stop an answer (any answer: it checks its own)."""
        self._on_stop = stop

    async def start(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self._beat()
            newest = await self._redis.xrevrange(STOPS_KEY, count=1)
            self._last_stop = newest[0][0].decode() if newest else "0-0"
        self._task = asyncio.create_task(self._run(), name="liveness")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=2.0)
        with contextlib.suppress(*REDIS_ERRORS):
            # Gone on purpose: its answers have ended (or are ended by the sweep at once).
            await self._redis.zrem(PROCESSES_KEY, self.process_id)

    async def request_stop(self, answer_id: uuid.UUID) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(STOPS_KEY, {"answer": str(answer_id)}, maxlen=KEEP_STOPS, approximate=True)
            pipe.pexpire(STOPS_KEY, 600_000)
            await pipe.execute()

    async def writer_of(self, answer_id: uuid.UUID) -> str | None:
        """The live process writing the answer; None when none is (or none is alive)."""
        writer = await self._redis.hget(WRITERS_KEY, str(answer_id))  # type: ignore[misc]
        if writer is None:
            return None
        seen = await self._redis.zscore(PROCESSES_KEY, writer)
        alive = seen is not None and time.time() - seen < self._dead_after
        return writer.decode() if alive else None

    async def _run(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                await self._beat()
                await self._hear_stops()
                if time.monotonic() - last_sweep >= SWEEP_EVERY:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except REDIS_ERRORS as exc:
                log.warning("liveness: Redis failed: %s", exc or type(exc).__name__)
                await asyncio.sleep(HEARTBEAT)
            except Exception:
                log.exception("liveness: a round failed")
                await asyncio.sleep(HEARTBEAT)

    async def _beat(self) -> None:
        await self._redis.zadd(PROCESSES_KEY, {self.process_id: time.time()})

    async def _hear_stops(self) -> None:
        replies = await self._tail.xread(
            {STOPS_KEY: self._last_stop}, count=100, block=int(HEARTBEAT * 1000)
        )
        for _, entries in replies:
            for entry_id, fields in entries:
                self._last_stop = entry_id.decode()
                with contextlib.suppress(ValueError, KeyError):
                    self._on_stop(uuid.UUID(fields[b"answer"].decode()))

    async def sweep(self) -> int:
        """Ends the answers of processes silent for `dead_after`; how many this process ended."""
        writers = await self._redis.hgetall(WRITERS_KEY)  # type: ignore[misc]
        if not writers:
            return 0
        now = time.time()
        beats = dict(await self._redis.zrange(PROCESSES_KEY, 0, -1, withscores=True))
        ended = 0
        for answer_id, writer in writers.items():
            if beats.get(writer, 0) >= now - self._dead_after:
                continue
            # Only the process that removes it ends it.
            if await self._redis.hdel(WRITERS_KEY, answer_id):  # type: ignore[misc]
                ended += await self._end_orphan(uuid.UUID(answer_id.decode()))
        dead = [p for p, seen in beats.items() if seen < now - self._dead_after]
        if dead:
            await self._redis.zrem(PROCESSES_KEY, *dead)
        return ended

    async def _end_orphan(self, answer_id: uuid.UUID) -> int:
        owner = await answer_owner(self._database, answer_id)
        if owner is None:
            return 0
        await self._vault.enter(owner)  # its log and row are sealed with its user's key
        events = await self._log.read(answer_id, after=0) or []
        ended = await interrupt_answer(
            self._database, answer_id, reason="process_died", content=answer_text(events)
        )
        async with self._database.session() as db:
            answer = await db.get(Message, answer_id)
        if not ended or answer is None:
            return 0
        log.warning("ended an answer whose process died", extra={"message_id": str(answer_id)})
        if not events or events[-1].name not in END_EVENTS:
            last_id = events[-1].id if events else 0
            self._log.append(answer_id, end_event(last_id + 1, answer, stored_error(answer)))
        self._log.finish(answer_id)
        return 1
