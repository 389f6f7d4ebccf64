"""A counter that says "something changed": in Redis so every process sees it, or in process.

Caches compare the revision they were loaded at with the current one on use, so a change made
in one process is seen by the next request in any other, with no restart.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from chatgate.core.redis import REDIS_ERRORS, REDIS_TIMEOUT, RETRY_AFTER, RedisOutage

log = logging.getLogger("chatgate.revision")


class Revision:
    def __init__(
        self,
        redis: Redis | None,
        key: str,
        *,
        timeout: float = REDIS_TIMEOUT,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self._redis = redis
        self._key = key
        self._timeout = timeout
        self._outage = RedisOutage(retry_after=retry_after)
        self._local = 0
        self._last_seen = 0
        # A change saved while Redis could not be told: announced on the next read that works.
        self._untold = False

    async def current(self) -> int:
        """The revision now; while Redis is unreachable or hung, the last one seen (caches keep
        serving what they have rather than failing or holding every request)."""
        if self._redis is None:
            return self._local
        if self._outage.ongoing:
            return self._last_seen
        try:
            # The client's own socket timeouts bound each call too; this bounds the whole read,
            # a health check's ping included, whatever client was passed in.
            async with asyncio.timeout(self._timeout * 2):
                self._last_seen = int(await self._redis.get(self._key) or 0)
        except REDIS_ERRORS as exc:
            if self._outage.failed():
                log.warning(
                    "cannot read %s from Redis; using the last value seen: %s",
                    self._key, exc or type(exc).__name__,
                )  # fmt: skip
            return self._last_seen
        if self._outage.answered():
            log.warning("%s is read from Redis again", self._key)
        if self._untold:
            await self.bump()
        return self._last_seen

    async def bump(self) -> None:
        """Announces a change that is already saved: a Redis that cannot be told now is told
        on this process's next read that works, and the change is never refused for it."""
        if self._redis is None:
            self._local += 1
            return
        try:
            async with asyncio.timeout(self._timeout * 2):
                self._last_seen = int(await self._redis.incr(self._key))
            self._untold = False
        except REDIS_ERRORS as exc:
            self._untold = True
            log.warning(
                "cannot announce a change of %s in Redis yet: %s", self._key,
                exc or type(exc).__name__,
            )  # fmt: skip
