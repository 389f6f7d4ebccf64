"""Where cached answers live: Redis, shared by every process, or this process's memory.

An entry already there stays until it expires, unless a put says `replace` (an admin's refresh):
whoever asks first fills an entry, nobody else's answer takes its place. Both backends keep an
entry for a fixed time to live; the in-process one also keeps at most
`max_entries`, dropping the least recently used (Redis is bounded by the TTL and its own
maxmemory policy). A Redis that failed a call is not asked again for a couple of seconds: the
cache is an optimisation, and a hung Redis must not add its timeout to every question.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from chatgate.core.redis import REDIS_ERRORS, RedisOutage


class AnswerStore(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, text: str, *, replace: bool = False) -> None: ...


# Under the cache's own bound (STORE_TIMEOUT, 0.5 s) so that this store, not its caller's
# cancellation, sees a hung Redis fail and remembers it.
CALL_TIMEOUT = 0.4


class RedisAnswerStore:
    def __init__(self, redis: Redis, *, ttl_seconds: float) -> None:
        self._redis = redis
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._outage = RedisOutage()

    async def get(self, key: str) -> str | None:
        self._check_outage()
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                value = await self._redis.get(key)
        except REDIS_ERRORS:
            self._outage.failed()
            raise
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    async def put(self, key: str, text: str, *, replace: bool = False) -> None:
        self._check_outage()
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await self._redis.set(key, text.encode("utf-8"), px=self._ttl_ms, nx=not replace)
        except REDIS_ERRORS:
            self._outage.failed()
            raise

    def _check_outage(self) -> None:
        # Raised as the call would have: the cache's caller already treats it as a miss.
        if self._outage.ongoing:
            raise RedisConnectionError("Redis failed moments ago; not asked again yet")


class MemoryAnswerStore:
    """An LRU of at most `max_entries`, each entry expiring `ttl_seconds` after it was stored.

    A dozen lines of OrderedDict rather than a dependency (cachetools' TTLCache does the same):
    every call runs on the event loop thread, so no lock is needed.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, text = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return text

    async def put(self, key: str, text: str, *, replace: bool = False) -> None:
        if not replace and await self.get(key) is not None:
            return
        self._entries[key] = (self._clock() + self._ttl, text)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
