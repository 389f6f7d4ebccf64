"""Per-request metrics and the access log line, as pure ASGI so streams are neither buffered nor
cut short. Handlers and engine calls add to the request's stats through a context variable."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.observability import metrics

access_log = logging.getLogger("chatgate.access")


@dataclass(slots=True)
class RequestStats:
    engine_seconds: float = 0.0
    cache_hit: bool | None = None


_stats: ContextVar[RequestStats | None] = ContextVar("request_stats", default=None)


def request_stats() -> RequestStats | None:
    """The stats of the request being served, if any (tasks it starts share them)."""
    return _stats.get()


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, *, skip: frozenset[str] = frozenset({"/metrics"})) -> None:
        self.app = app
        self.skip = skip
        # Labelled children, looked up once per (route, method[, status]): label values are
        # bounded (route templates), and `.labels()` on every request cost several µs.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        stats = RequestStats()
        token = _stats.set(stats)
        status = 500
        start = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            metrics.http_in_flight.dec()
            _stats.reset(token)
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self._counter(template, method, status).inc()
            self._histogram(template, method).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={
                    "route": template, "method": method, "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "engine_ms": round(stats.engine_seconds * 1000, 2),
                    "cache_hit": stats.cache_hit,
                    "user": scope.get("state", {}).get("user_id"),
                })  # fmt: skip
