"""A counter that says "something changed": in Redis so every process sees it, or in process.

Caches compare the revision they were loaded at with the current one on use, so a change made
in one process is seen by the next request in any other, with no restart.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("chatgate.revision")


class Revision:
    def __init__(self, redis: Redis | None, key: str) -> None:
        self._redis = redis
        self._key = key
        self._local = 0
        self._last_seen = 0

    async def current(self) -> int:
        """The revision now; while Redis is unreachable, the last one seen (caches keep serving
        what they have rather than failing every request)."""
        if self._redis is None:
            return self._local
        try:
            self._last_seen = int(await self._redis.get(self._key) or 0)
        except (RedisError, OSError) as exc:
            log.warning("cannot read %s from Redis; using the last value seen: %s", self._key, exc)
        return self._last_seen

    async def bump(self) -> None:
        if self._redis is None:
            self._local += 1
        else:
            await self._redis.incr(self._key)
