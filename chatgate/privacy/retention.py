"""Retention: a conversation whose last activity is older than its period is erased by a job
that runs every `retention_every_minutes` in one process of the deployment at a time.

The period is the assistant's own `retention_days`, else the global `retention_days`; neither
set keeps conversations until they are deleted. One run holds a lock (in Redis when configured,
with an expiry past the run's time bound; a PostgreSQL advisory lock otherwise; the embedded
default has one process), erases `retention_batch` conversations per transaction, stops after
`retention_max_seconds` (the next run goes on), and is logged, audited (counts only) and counted
(`chatgate_retention_erased_conversations_total`). A conversation with an answer streaming is
never erased: it is not idle, whatever its last activity says. The answer cache is not a
conversation: its entries expire with their own time to live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from collections.abc import AsyncIterator
from datetime import timedelta

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import LockError
from sqlalchemy import ColumnElement, exists, select, text, true

from chatgate.assistants.service import AssistantCatalog
from chatgate.audit.service import record_audit_event
from chatgate.chat.models import ChatSession, Message
from chatgate.core.config import Settings
from chatgate.core.db import Database
from chatgate.core.redis import REDIS_ERRORS
from chatgate.core.time import utcnow
from chatgate.privacy.erasure import erase_sessions
from chatgate.privacy.notices import CLOSE_SECONDS
from chatgate.tasks.queue import TaskQueue

log = logging.getLogger("chatgate.privacy.retention")
erased_conversations = Counter(
    "chatgate_retention_erased_conversations_total",
    "Conversations erased by the retention job after their retention period",
)
LOCK_KEY = "chatgate:retention:lock"
# pg_try_advisory_lock's key: "cgretent" as a 64-bit number, chosen to collide with nothing.
ADVISORY_KEY = int.from_bytes(b"cgretent", "big")
RUN_BY = "chatgate:retention"


class RetentionJob:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        redis: Redis | None,
        catalog: AssistantCatalog,
        queue: TaskQueue | None,
    ) -> None:
        self._settings = settings
        self._database = database
        self._redis = redis
        self._catalog = catalog
        self._queue = queue
        self._running = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._every_period(), name="retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Bounded, as the erasure notices' poll (notices.py, CLOSE_SECONDS).
            await asyncio.wait([self._task], timeout=CLOSE_SECONDS)

    async def run(self, *, by: str = RUN_BY) -> dict[str, int] | None:
        """Erases the conversations past their period, within the time bound; what it removed,
        or None when another run (here or in another process) holds the lock."""
        async with self._held() as held:
            if not held:
                return None
            removed = await self._erase_expired()
        if removed.get("sessions"):
            async with self._database.session() as db:
                record_audit_event(
                    db, action="conversations.expired", user_id=by, target_type="retention",
                    target_id="conversations", details={"removed": removed},
                )  # fmt: skip
                await db.commit()
        log.info("retention run", extra={"removed": removed})
        return removed

    async def _every_period(self) -> None:
        while True:
            await asyncio.sleep(self._settings.retention_every_minutes * 60)
            try:
                await self.run()
            except Exception:
                log.exception("the retention run failed; the next one tries again")

    async def _erase_expired(self) -> dict[str, int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.retention_max_seconds
        removed: Tally[str] = Tally()
        for expired in await self._expired_conditions():
            while loop.time() < deadline:
                async with self._database.session() as db:
                    query = select(ChatSession.id).where(expired)
                    ids = list(await db.scalars(query.limit(self._settings.retention_batch)))
                if not ids:
                    break
                batch = await erase_sessions(self._database, self._queue, ids, still=expired)
                erased_conversations.inc(batch["sessions"])
                removed.update(batch)
                if not batch["sessions"]:
                    break  # every one of them became active meanwhile
        return dict(removed)

    async def _expired_conditions(self) -> list[ColumnElement[bool]]:
        """One condition per period: the assistants with their own, then the global one for
        every other assistant."""
        now = utcnow()
        idle = ~exists().where(Message.session_id == ChatSession.id, Message.status == "streaming")
        own = {row.id: row.retention_days for row in await self._catalog.everything()}
        own_days = {assistant: days for assistant, days in own.items() if days}
        conditions: list[ColumnElement[bool]] = [
            (ChatSession.assistant_id == assistant)
            & (ChatSession.updated_at < now - timedelta(days=days)) & idle
            for assistant, days in own_days.items()
        ]  # fmt: skip
        if self._settings.retention_days:
            others = ChatSession.assistant_id.not_in(own_days) if own_days else true()
            cutoff = now - timedelta(days=self._settings.retention_days)
            conditions.append(others & (ChatSession.updated_at < cutoff) & idle)
        return conditions

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[bool]:
        """The deployment's one run: whether this one may go."""
        if self._running.locked():
            yield False
            return
        async with self._running:
            if self._redis is not None:
                async with self._redis_lock() as held:
                    yield held
            elif self._database.engine.dialect.name == "postgresql":
                async with self._advisory_lock() as held:
                    yield held
            else:
                yield True  # SQLite: one process

    @contextlib.asynccontextmanager
    async def _redis_lock(self) -> AsyncIterator[bool]:
        # Outlives the run's time bound, so a run never loses it; a dead process's expires.
        expiry = self._settings.retention_max_seconds + 60
        lock = self._redis.lock(LOCK_KEY, timeout=expiry, blocking=False)  # type: ignore[union-attr]
        try:
            held = await lock.acquire()
        except REDIS_ERRORS as exc:
            log.warning("retention skipped: Redis cannot be asked for its lock: %s", exc)
            held = False
        try:
            yield bool(held)
        finally:
            if held:
                with contextlib.suppress(LockError, *REDIS_ERRORS):
                    await lock.release()

    @contextlib.asynccontextmanager
    async def _advisory_lock(self) -> AsyncIterator[bool]:
        # Held by this connection's session; released with it, even if the process dies.
        async with self._database.engine.connect() as conn:
            lock = text("SELECT pg_try_advisory_lock(:key)")
            held = bool(await conn.scalar(lock, {"key": ADVISORY_KEY}))
            try:
                yield held
            finally:
                if held:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY}
                    )
