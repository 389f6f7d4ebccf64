"""Rate limits: requests per minute per user or key and per IP, tokens per minute per user and
assistant. Sliding-window counters from the `limits` library: atomic Lua in Redis, shared by every
process; in process without Redis. When Redis is unreachable or hung (each call gives up after
half a second) the policy decides: fail open (counted and logged) or fail closed (503); after a
failure Redis is not asked again for a couple of seconds, so an outage costs no request a wait."""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from chatgate.core.errors import AppError, ServiceUnavailable
from chatgate.core.policies import RateLimitSettings
from chatgate.core.redis import REDIS_TIMEOUT, RedisOutage
from chatgate.observability import metrics

log = logging.getLogger("chatgate.ratelimit")


class RateLimited(AppError):
    status, code = 429, "rate_limited"


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, redis_url: str | None) -> None:
        self.enabled = settings.enabled
        self._fail_open = settings.on_redis_error == "open"
        storage: Storage = (
            RedisStorage(
                f"async+{redis_url}", implementation="redispy", wrap_exceptions=True,
                key_prefix="chatgate:limits", socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
            if redis_url
            else MemoryStorage()
        )  # fmt: skip
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._outage = RedisOutage()
        self._per_user = RateLimitItemPerMinute(settings.requests_per_minute)
        self._per_ip = RateLimitItemPerMinute(settings.ip_requests_per_minute)
        self._tokens = RateLimitItemPerMinute(settings.tokens_per_minute)

    async def check_request(self, *, caller: str) -> None:
        await self._take(self._per_user, "user", caller, cost=1, what="requests")

    async def check_ip(self, *, address: str) -> None:
        await self._take(self._per_ip, "ip", address, cost=1, what="requests from this address")

    async def check_tokens(self, *, user: str, assistant: str, estimate: int) -> None:
        """Refuses a call whose prompt alone would pass the minute's token budget."""
        if not self.enabled:
            return
        if self._outage.ongoing:
            self._unavailable(None)
            return
        try:
            allowed = await self._limiter.test(
                self._tokens, "tokens", user, assistant, cost=estimate
            )
        except (StorageError, RedisError, OSError) as exc:
            self._unavailable(exc)
            return
        if not allowed:
            await self._refuse(
                self._tokens, ("tokens", user, assistant), "tokens", "tokens_rate_limited"
            )

    async def record_tokens(self, *, user: str, assistant: str, tokens: int) -> None:
        if not self.enabled or tokens <= 0 or self._outage.ongoing:
            return
        try:
            if not await self._limiter.hit(self._tokens, "tokens", user, assistant, cost=tokens):
                # Over the budget: fill it, so the next call waits for the window to move.
                stats = await self._limiter.get_window_stats(
                    self._tokens, "tokens", user, assistant
                )
                if stats.remaining > 0:
                    await self._limiter.hit(
                        self._tokens, "tokens", user, assistant, cost=stats.remaining
                    )
        except (StorageError, RedisError, OSError) as exc:
            self._unavailable(exc)

    async def _take(
        self, item: RateLimitItem, scope: str, who: str, *, cost: int, what: str
    ) -> None:
        if not self.enabled:
            return
        if self._outage.ongoing:
            self._unavailable(None)
            return
        try:
            allowed = await self._limiter.hit(item, scope, who, cost=cost)
        except (StorageError, RedisError, OSError) as exc:
            self._unavailable(exc)
            return
        if not allowed:
            await self._refuse(item, (scope, who), what, "rate_limited")

    async def _refuse(
        self, item: RateLimitItem, ids: tuple[str, ...], what: str, code: str
    ) -> None:
        stats = await self._limiter.get_window_stats(item, *ids)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        metrics.rate_limit_rejections.labels(ids[0]).inc()
        raise RateLimited(
            f"too many {what}: the limit is {item.amount} per minute; retry in {wait}s",
            code=code,
            headers={
                "Retry-After": str(wait),
                "RateLimit-Limit": str(item.amount),
                "RateLimit-Remaining": str(max(0, stats.remaining)),
                "RateLimit-Reset": str(wait),
            },
        )

    def _unavailable(self, exc: Exception | None) -> None:
        """Redis failed this call (`exc`), or failed moments ago and was not asked (None)."""
        metrics.rate_limit_errors.inc()
        if exc is not None:  # logged when Redis was asked, not for each request skipping it
            self._outage.failed()
            if self._fail_open:
                log.warning("rate limiter storage unreachable; letting requests through: %s", exc)
            else:
                log.error("rate limiter storage unreachable; refusing requests: %s", exc)
        if self._fail_open:
            return
        raise ServiceUnavailable(
            "rate limits cannot be checked right now", code="rate_limiter_unavailable",
            headers={"Retry-After": "5"},
        )  # fmt: skip
