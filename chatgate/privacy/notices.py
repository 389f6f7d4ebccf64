"""Erasure notices: every process of a deployment hears that a user's data is being erased, so
that each drops what it holds of them in memory (answers it is writing for them, their unwrapped
data key…).

With Redis the notices are a short stream that every process reads about once a second (a
process that missed a second catches up; the stream, which names the users, expires ten minutes
after the last notice); without Redis there is one process (the embedded default), told directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from redis.asyncio import Redis

from chatgate.core.redis import REDIS_ERRORS
from chatgate.core.time import utcnow

STREAM_KEY = "chatgate:erasures"
KEEP_MS = 600_000
KEEP_NOTICES = 10_000
POLL_SECONDS = 1.0
CLOSE_SECONDS = 2.0
log = logging.getLogger("chatgate.privacy.notices")

# What a process drops of a user: called with the user id and when their erasure began.
Forgetter = Callable[[str, datetime], Awaitable[object]]


class ErasureNotices:
    def __init__(self, redis: Redis | None, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._redis = redis
        self._poll_seconds = poll_seconds
        self._forgetters: list[Forgetter] = []
        self._origin = secrets.token_hex(8)  # this process, so it skips its own notices
        self._last_id = "0-0"
        self._task: asyncio.Task[None] | None = None

    def on_erasure(self, forget: Forgetter) -> None:
        """Registers what this process drops of an erased user."""
        self._forgetters.append(forget)

    async def start(self) -> None:
        if self._redis is None:
            return
        with contextlib.suppress(*REDIS_ERRORS):
            # Only notices from now on: older erasures were done by the processes then running.
            newest = await self._redis.xrevrange(STREAM_KEY, count=1)
            if newest:
                self._last_id = _text(newest[0][0])
        self._task = asyncio.create_task(self._listen(), name="erasure-notices")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Bounded: in `chatgate worker`, a cancelled poll was seen never to wake (its sleep
            # pending after arq's SIGTERM handling), which held the whole shutdown.
            await asyncio.wait([self._task], timeout=CLOSE_SECONDS)

    async def announce(self, user_id: str) -> None:
        """Drops the user's data in this process's memory, then tells the others. Raises when
        Redis cannot be told: the erasure must not pass for done in every process."""
        erased_at = utcnow()
        await self._forget(user_id, erased_at)
        if self._redis is None:
            return
        fields = {"user": user_id, "at": erased_at.isoformat(), "origin": self._origin}
        async with self._redis.pipeline() as pipe:
            pipe.xadd(STREAM_KEY, fields, maxlen=KEEP_NOTICES, approximate=True)  # type: ignore[arg-type]
            pipe.pexpire(STREAM_KEY, KEEP_MS)
            await pipe.execute()

    async def _forget(self, user_id: str, erased_at: datetime) -> None:
        for forget in self._forgetters:
            await forget(user_id, erased_at)

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                replies = await self._redis.xread({STREAM_KEY: self._last_id}, count=100)
            except REDIS_ERRORS as exc:
                log.warning("cannot read erasure notices: %s", exc or type(exc).__name__)
                continue
            for _, entries in replies:
                for entry_id, fields in entries:
                    self._last_id = _text(entry_id)
                    await self._heard({_text(k): _text(v) for k, v in fields.items()})

    async def _heard(self, notice: dict[str, str]) -> None:
        if notice.get("origin") == self._origin or "user" not in notice:
            return
        try:
            erased_at = datetime.fromisoformat(notice["at"]).astimezone(UTC)
        except (KeyError, ValueError):
            erased_at = utcnow()
        try:
            await self._forget(notice["user"], erased_at)
        except Exception:
            log.exception("dropping an erased user's data from memory failed")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
