"""Where cached answers live: Redis, shared by every process, or this process's memory.

An entry already there stays until it expires, unless a put says `replace` (an admin's refresh):
whoever asks first fills an entry, nobody else's answer takes its place. Both backends keep an
entry for a fixed time to live; the in-process one also keeps at most
`max_entries`, dropping the least recently used (Redis is bounded by the TTL and its own
maxmemory policy). A Redis that failed a call is not asked again for a couple of seconds: the
cache is an optimisation, and a hung Redis must not add its timeout to every question.

A put may name an `index` (its owner's: `AnswerCache.owner_index`), a set of the keys stored
under it, in the same store and kept as long as its newest entry, so that erasing a user drops
the entries their turns stored (`drop_indexed`). The key joins the index even when another
entry was there first: erasing then drops an entry someone else's turn stored with the same
question, which costs one engine call later and keeps nobody's answer.
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

    async def put(
        self, key: str, text: str, *, replace: bool = False, index: str | None = None
    ) -> None: ...

    async def drop(self, key: str) -> None: ...

    async def drop_indexed(self, index: str) -> int:
        """Removes every entry the index names, and the index; how many entries there were."""
        ...


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

    async def put(
        self, key: str, text: str, *, replace: bool = False, index: str | None = None
    ) -> None:
        self._check_outage()
        try:
            async with asyncio.timeout(CALL_TIMEOUT), self._redis.pipeline() as pipe:
                pipe.set(key, text.encode("utf-8"), px=self._ttl_ms, nx=not replace)
                if index is not None:
                    pipe.sadd(index, key)
                    pipe.pexpire(index, self._ttl_ms)
                await pipe.execute()
        except REDIS_ERRORS:
            self._outage.failed()
            raise

    # Erasing asks Redis even during an outage, and raises: it must not pass for done.
    async def drop(self, key: str) -> None:
        await self._redis.delete(key)

    async def drop_indexed(self, index: str) -> int:
        async with self._redis.pipeline() as pipe:  # a transaction: no put slips in between
            pipe.smembers(index)
            pipe.delete(index)
            keys, _ = await pipe.execute()
        return int(await self._redis.delete(*keys)) if keys else 0

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
        self._entries: OrderedDict[str, tuple[float, str, str | None]] = OrderedDict()
        self._indexes: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, text, _ = entry
        if expires <= self._clock():
            await self.drop(key)
            return None
        self._entries.move_to_end(key)
        return text

    async def put(
        self, key: str, text: str, *, replace: bool = False, index: str | None = None
    ) -> None:
        if index is not None:
            self._indexes.setdefault(index, set()).add(key)
        if not replace and await self.get(key) is not None:
            return
        await self.drop(key)
        self._entries[key] = (self._clock() + self._ttl, text, index)
        while len(self._entries) > self._max:
            await self.drop(next(iter(self._entries)))

    async def drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and (index := entry[2]) is not None:
            keys = self._indexes.get(index, set())
            keys.discard(key)
            if not keys:
                self._indexes.pop(index, None)

    async def drop_indexed(self, index: str) -> int:
        keys = self._indexes.pop(index, set())
        present = [key for key in keys if key in self._entries]
        for key in present:
            await self.drop(key)
        return len(present)
