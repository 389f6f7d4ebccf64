"""Checks of what chatgate depends on, for /ready and for the gauges /metrics reads when it is
scraped; and the database pool's use, counted as connections come and go (each worker process
has its own pool, so only the processes themselves know it, and /metrics sums them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.core.db import Database
from chatgate.observability import metrics

# A probe must answer quickly even when a dependency hangs: a scrape waits for it.
CHECK_TIMEOUT = 2.0


async def check_database(database: Database) -> str:
    """ "ok", or why not."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await database.ping()
    except Exception as exc:  # any failure means down; its kind is the reason
        return f"failed: {type(exc).__name__}"
    return "ok"


async def check_redis(redis: Redis) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await redis.ping()
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"


async def check_dependencies(database: Database, redis: Redis | None) -> dict[str, str]:
    """Each dependency's check, run side by side."""
    names = ["database"]
    checks = [check_database(database)]
    if redis is not None:
        names.append("redis")
        checks.append(check_redis(redis))
    return dict(zip(names, await asyncio.gather(*checks), strict=True))


class Queue(Protocol):
    async def depth(self) -> int: ...


async def _queue_depth(queue: Queue) -> int | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await queue.depth()
    except Exception:  # Redis down: the dependency gauge says so
        return None


async def refresh_scrape_gauges(
    *, database: Database, redis: Redis | None, queue: Queue | None
) -> None:
    """Sets the gauges read at scrape time: dependencies up or down, the task queue's depth."""
    checks, depth = await asyncio.gather(
        check_dependencies(database, redis),
        _queue_depth(queue) if queue is not None else asyncio.sleep(0, None),
    )
    for name, result in checks.items():
        metrics.dependency_up.labels(name).set(1 if result == "ok" else 0)
    if depth is not None:
        metrics.task_queue_depth.set(depth)


def watch_pool(engine: AsyncEngine) -> Callable[[], None]:
    """Counts this process's checked-out connections and its pool's limit into the gauges;
    returns what takes the limit back out at shutdown."""
    pool = engine.sync_engine.pool
    size = pool.size() if hasattr(pool, "size") else 0
    limit = size + max(getattr(pool, "_max_overflow", 0), 0)
    metrics.database_pool_limit.inc(limit)

    def checked_out(*_: Any) -> None:
        metrics.database_pool_in_use.inc()

    def checked_in(*_: Any) -> None:
        metrics.database_pool_in_use.dec()

    event.listen(engine.sync_engine, "checkout", checked_out)
    event.listen(engine.sync_engine, "checkin", checked_in)
    return lambda: metrics.database_pool_limit.dec(limit)
