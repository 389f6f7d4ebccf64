"""Checks of what chatgate depends on, for /ready and for the gauges /metrics reads when it is
scraped; and the database pool's use, counted as connections come and go (each worker process
has its own pool, so only the processes themselves know it, and /metrics sums them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from chatgate.core.db import Database
from chatgate.observability import metrics
from chatgate.tasks.queue import TaskQueue

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


async def _queue_depth(queue: TaskQueue) -> int | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await queue.depth()
    except Exception:  # Redis down: the dependency gauge says so
        return None


async def refresh_scrape_gauges(state: Any) -> None:
    """Sets the gauges read at scrape time from the app's state (its lifespan's objects)."""
    database: Database | None = getattr(state, "database", None)
    if database is None:  # not started yet, or shutting down
        return
    redis: Redis | None = getattr(state, "redis", None)
    turns = getattr(state, "turns", None)
    queue: TaskQueue | None = getattr(turns, "queue", None)
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
