"""Per-request metrics and the access-log line. Handlers and engine calls add to the request's
stats through a context variable; the front door (`chatgate.gateway.front`) opens and closes
them."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from chatgate.core.logging import ACCESS_LOGGER
from chatgate.observability import metrics

access_log = logging.getLogger(ACCESS_LOGGER)


@dataclass(slots=True)
class RequestStats:
    engine_seconds: float = 0.0
    cache_hit: bool | None = None
    started: float = field(default_factory=time.perf_counter)


_stats: ContextVar[RequestStats | None] = ContextVar("request_stats", default=None)


def request_stats() -> RequestStats | None:
    """The stats of the request being served, if any (tasks it starts share them)."""
    return _stats.get()


class RequestObserver:
    """Counts, times and logs each request under its route template (bounded label values)."""

    def __init__(self) -> None:
        # Labelled children, looked up once per (route, method[, status]): `.labels()` on every
        # request cost several µs.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def begin(self) -> tuple[RequestStats, Token[RequestStats | None]]:
        metrics.http_in_flight.inc()
        stats = RequestStats()
        return stats, _stats.set(stats)

    def end(
        self,
        stats: RequestStats,
        token: Token[RequestStats | None],
        *,
        route: str,
        method: str,
        status: int,
        user: str | None,
    ) -> None:
        _stats.reset(token)
        metrics.http_in_flight.dec()
        elapsed = time.perf_counter() - stats.started
        self._counter(route, method, status).inc()
        self._histogram(route, method).observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("request", extra={
                "route": route, "method": method, "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "engine_ms": round(stats.engine_seconds * 1000, 2),
                "cache_hit": stats.cache_hit,
                "user": user,
            })  # fmt: skip

    def _counter(self, route: str, method: str, status: int) -> Any:
        key = (route, method, status)
        if (child := self._counters.get(key)) is None:
            child = self._counters[key] = metrics.http_requests.labels(route, method, str(status))
        return child

    def _histogram(self, route: str, method: str) -> Any:
        key = (route, method)
        if (child := self._histograms.get(key)) is None:
            child = self._histograms[key] = metrics.http_duration.labels(route, method)
        return child
