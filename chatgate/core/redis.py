"""Every Redis client chatgate makes, bounded in time.

redis-py waits forever by default: a Redis that accepts connections but does not answer (paused,
swapping, a dead host behind a live load balancer) would hold every request that reads a
revision, a limit or a breaker. With these timeouts a hung Redis fails a call the way a refused
connection does, and each caller degrades as it already does for that (`REDIS_ERRORS`).
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

# Seconds to connect and to wait for a reply. Hot-path reads (revisions, limits, breakers, the
# answer cache) are sub-millisecond on a healthy Redis: half a second means it is not healthy.
REDIS_TIMEOUT = 0.5
# A pooled connection idle longer than this is pinged before use, so one that died while idle
# (Redis restarted, a proxy dropped it) is replaced instead of failing the request that takes it.
HEALTH_CHECK_SECONDS = 15

# What a call raises when Redis cannot answer: refused or reset (redis ConnectionError, OSError),
# timed out (redis TimeoutError is a RedisError; asyncio's TimeoutError is an OSError).
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


def redis_options(timeout: float = REDIS_TIMEOUT) -> dict[str, Any]:
    """The client options every chatgate Redis connection uses (also for arq's pool)."""
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        # A retry after a timeout doubles the wait; callers degrade instead.
        "retry_on_timeout": False,
    }


def connect_redis(url: str, *, timeout: float = REDIS_TIMEOUT) -> Redis:
    """A client for `url` whose every call gives up after about `timeout` seconds.
    No I/O happens here: connections open on first use."""
    return Redis.from_url(url, **redis_options(timeout))


# After a failure, a hot path does not ask Redis again for this long: every request reads it,
# and a hung Redis would otherwise cost each of them the whole timeout, several times over.
RETRY_AFTER = 2.0


class RedisOutage:
    """One caller's memory that Redis just failed it, so it degrades at once for `retry_after`
    seconds instead of waiting out a timeout on every request. Per caller and per process:
    nothing shared to go wrong, and each finds Redis again on its own."""

    def __init__(self, *, retry_after: float = RETRY_AFTER) -> None:
        self._retry_after = retry_after
        self._until = 0.0

    @property
    def ongoing(self) -> bool:
        """True while Redis failed less than `retry_after` seconds ago: do not ask it."""
        return time.monotonic() < self._until

    def failed(self) -> bool:
        """Records a failure; True when it starts an outage (the one worth logging)."""
        first = self._until == 0.0
        self._until = time.monotonic() + self._retry_after
        return first

    def answered(self) -> bool:
        """Records a success; True when it ends an outage."""
        ended = self._until != 0.0
        self._until = 0.0
        return ended
