"""Measures what a rate-limit check costs with the `limits` library, per strategy and storage.

.venv/bin/python bench/rate_limit_choice.py      (needs Redis on 127.0.0.1:6379)
"""

from __future__ import annotations

import asyncio
import time

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

N = 5000


async def measure(limiter_cls: type, storage: object, label: str) -> None:
    limiter = limiter_cls(storage)
    item = parse("1000000/minute")
    for i in range(200):
        await limiter.hit(item, "warm", str(i % 10))
    start = time.perf_counter()
    for i in range(N):
        await limiter.hit(item, "bench", str(i % 50))
    per_call = (time.perf_counter() - start) / N * 1e6
    print(f"{label:<48} {per_call:8.1f} µs per check")


async def main() -> None:
    for cls in (FixedWindowRateLimiter, SlidingWindowCounterRateLimiter, MovingWindowRateLimiter):
        redis = RedisStorage(
            "async+redis://127.0.0.1:6379/0",
            implementation="redispy",
            key_prefix=f"chatgate-bench-{cls.__name__}",
        )
        await measure(cls, MemoryStorage(), f"{cls.__name__} + memory")
        await measure(cls, redis, f"{cls.__name__} + Redis (redis-py)")


if __name__ == "__main__":
    asyncio.run(main())
