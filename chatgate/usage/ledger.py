"""The usage ledger: engine calls (and cached answers), written off the request path.

`record` only adds to this process's buffer (a few µs, no I/O): a call of the same day, user,
key, assistant, route, engine and model as one already waiting (cached and fallback alike) is
summed into that row, whose `calls` counts them, so a busy process writes a row per caller and
model each second, not one per call. One task writes the buffer:
every second, or at once when BATCH rows wait, as multi-row INSERTs in one transaction, each
write bounded in time. A write that fails keeps its rows, and the next tries again after a
backoff; the buffer holds at most MAX_ROWS, past which new rows are dropped, counted
(`chatgate_usage_dropped_total`) and logged. `close` writes what is left: the runtime closes
the ledger after the answers are ended, so a stopped process loses nothing it recorded.

Rows carry their own id and are inserted with ON CONFLICT DO NOTHING: a write that timed out
after the database committed it is tried again without counting its rows twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatgate.core.db import Database
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.observability import metrics
from chatgate.usage.models import UsageRecord
from chatgate.usage.prices import Prices

BATCH = 500  # rows that wake the writer, and rows per INSERT statement
WRITE_ROWS = 2_000  # rows per transaction: a backlog is written in several
EVERY = 1.0  # seconds between writes otherwise (CHATGATE_USAGE_WRITE_SECONDS)
MAX_ROWS = 100_000  # rows the buffer holds while the database cannot take them
WRITE_SECONDS = 10.0  # one write, all its statements and the commit
MAX_BACKOFF = 30.0
CLOSE_SECONDS = 20.0  # writing what is left at close, retries included
# An erased user's calls that began before the erasure are written under this id instead.
ERASED = "erased"
ERASED_KEEP = timedelta(hours=1)  # longer than any engine call may take
log = logging.getLogger("chatgate.usage.ledger")


class Ledger:
    def __init__(self, *, database: Database, prices: Prices, every: float = EVERY) -> None:
        self._database = database
        self._every = every
        self.prices = prices
        self._buffer: list[dict[str, Any]] = []
        # The rows still waiting that a call may be summed into, by what they are about.
        self._open: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0
        self._dropped = 0
        self._last_drop_log = 0.0
        # Users erased lately, and when: their calls that began earlier are pseudonymized.
        self._erased: dict[str, datetime] = {}
        self._cost_children: dict[tuple[str, str], Any] = {}
        postgresql = database.engine.dialect.name == "postgresql"
        insert = postgresql_insert if postgresql else sqlite_insert
        # Rows as parameter sets of one statement: SQLAlchemy sends them as multi-row INSERTs
        # ("insertmanyvalues", which RETURNING turns on), compiled once; `.values(rows)` was
        # compiled anew for every batch, a tenth of the speed (bench/ledger.py).
        # Core's insert, of the table: the ORM's bulk path cost a third more.
        table = UsageRecord.metadata.tables[UsageRecord.__tablename__]
        self._statement = (
            insert(table)
            .on_conflict_do_nothing()
            .returning(table.c.id)
            .execution_options(insertmanyvalues_page_size=BATCH)
        )

    async def start(self) -> None:
        await self.prices.refresh()
        self._task = asyncio.create_task(self._run(), name="usage-ledger")

    def record(
        self,
        *,
        user_id: str | None,
        key_id: str | None,
        assistant_id: str | None,
        route: str | None,
        engine: str | None,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached: bool = False,
        fallback: bool = False,
        began: datetime | None = None,
    ) -> float:
        """Notes one engine call (engine None: a cached answer, which costs nothing); its cost."""
        now = utcnow()
        user = user_id or "unknown"
        if self._erased and (erased_at := self._erased.get(user)) and (began or now) < erased_at:
            user = ERASED
        cost = 0.0 if cached else self.prices.cost(model, prompt_tokens, completion_tokens)
        label = (engine or "cache", model)
        if (child := self._cost_children.get(label)) is None:
            child = self._cost_children[label] = metrics.cost.labels(*label)
        child.inc(cost)
        day = now.date()
        about = (day, user, key_id, assistant_id, route, engine, model, cached, fallback)
        if (row := self._open.get(about)) is not None:
            row["calls"] += 1
            row["prompt_tokens"] += prompt_tokens
            row["completion_tokens"] += completion_tokens
            row["cost"] += cost
            return cost
        if len(self._buffer) >= MAX_ROWS:
            self._drop()
            return cost
        # Cut to the columns' lengths: PostgreSQL refuses a longer value, and one such row
        # would fail every write of the rows around it.
        row = self._open[about] = {
            "created_at": now, "day": day, "user_id": user[:255],
            "key_id": key_id and key_id[:64], "assistant_id": assistant_id and assistant_id[:64],
            "route": (route or "unknown")[:32], "engine": engine and engine[:64],
            "model": model[:200], "calls": 1, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "cost": cost, "cached": cached,
            "fallback": fallback,
        }  # fmt: skip
        self._buffer.append(row)
        if len(self._buffer) >= BATCH:
            self._wake.set()
        return cost

    @property
    def pending(self) -> int:
        """Calls recorded and not yet written."""
        return sum(row["calls"] for row in self._buffer)

    def _drop(self) -> None:
        self._dropped += 1
        metrics.usage_dropped.inc()
        if time.monotonic() - self._last_drop_log > 10:
            self._last_drop_log = time.monotonic()
            log.error(
                "usage ledger full (%d rows waiting; the database has not taken them): "
                "%d calls dropped so far, not billed",
                len(self._buffer), self._dropped,
            )  # fmt: skip

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._pause()):
                    await self._wake.wait()
            self._wake.clear()
            with contextlib.suppress(Exception):  # it logs its own failures and keeps going
                await self.prices.refresh()
            if self._buffer and not self._closing:
                await self._write()

    def _pause(self) -> float:
        if not self._failures:
            return 0 if len(self._buffer) >= BATCH else self._every
        return min(EVERY * 2 ** (self._failures - 1), MAX_BACKOFF)

    async def flush(self) -> bool:
        """Writes every row recorded so far, now; whether all were written."""
        while self._buffer:
            if not await self._write():
                return False
        return True

    async def _write(self) -> bool:
        """Writes the oldest WRITE_ROWS rows waiting, as INSERTs of BATCH rows each, in one
        transaction; on failure they go back in front of any recorded meanwhile. Whether they
        were written."""
        async with self._write_lock:
            self._open.clear()  # a row being written takes no more calls
            rows = self._buffer[:WRITE_ROWS]
            del self._buffer[:WRITE_ROWS]
            if not rows:
                return True
            for row in rows:  # here rather than in `record`: a few µs off the request path
                if "id" not in row:  # kept by a retry, so a row is never inserted twice
                    row["id"] = new_id()
            try:
                async with asyncio.timeout(WRITE_SECONDS), self._database.session() as db:
                    for start in range(0, len(rows), BATCH):
                        await db.execute(self._statement, rows[start : start + BATCH])
                    await db.commit()
            except Exception as exc:
                self._buffer[:0] = rows
                self._failures += 1
                log.warning(
                    "usage ledger: writing %d rows failed (try %d; kept, tried again in %.0f s): "
                    "%r", len(rows), self._failures, self._pause(), exc,
                )  # fmt: skip
                return False
            if self._failures:
                log.warning("usage ledger: written again after %d failed tries", self._failures)
            self._failures = 0
            return True

    async def forget(self, user_id: str, erased_at: datetime) -> int:
        """A user's erasure (every process is told): their rows here and in the database are
        written under ERASED (totals stay right; who it was does not), and so are their calls
        still running that began before `erased_at`. How many rows it changed."""
        old = utcnow() - ERASED_KEEP
        self._erased = {u: t for u, t in self._erased.items() if t > old}
        self._erased[user_id] = erased_at
        self._open.clear()  # their rows are ERASED's now: no later call of theirs joins them
        buffered = [row for row in self._buffer if row["user_id"] == user_id]
        for row in buffered:
            row["user_id"] = ERASED
        # Under the write lock: after a write of their rows in flight, not before it.
        renamed = update(UsageRecord).where(UsageRecord.user_id == user_id).values(user_id=ERASED)
        async with (
            self._write_lock,
            asyncio.timeout(WRITE_SECONDS),
            self._database.session() as db,
        ):
            changed = await db.execute(renamed)
            await db.commit()
        return len(buffered) + int(changed.rowcount)  # type: ignore[attr-defined]

    async def close(self) -> None:
        """Stops the writer and writes what is left, trying until CLOSE_SECONDS are over."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=WRITE_SECONDS)
        deadline = time.monotonic() + CLOSE_SECONDS
        left = self.pending
        while self._buffer and time.monotonic() < deadline:
            if not await self._write():
                await asyncio.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
        if self._buffer:
            log.error(
                "usage ledger: %d calls could not be written before the process ended; lost",
                self.pending,
            )
        elif left:
            log.info("usage ledger: %d calls written at close", left)
