"""Prometheus metrics: one definition each, bounded labels only (routes, never raw paths or users).

With several workers, `chatgate serve` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before
they start, and /metrics sums what every worker wrote there.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ENGINE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)

http_requests = Counter(
    "chatgate_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
http_duration = Histogram(
    "chatgate_http_request_duration_seconds", "Time to answer an HTTP request (to the last byte)",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
http_in_flight = Gauge(
    "chatgate_http_requests_in_flight", "HTTP requests being answered", multiprocess_mode="livesum"
)
engine_duration = Histogram(
    "chatgate_engine_duration_seconds", "Time an engine took for a whole answer",
    ["provider", "model"], buckets=ENGINE_BUCKETS,
)  # fmt: skip
engine_first_token = Histogram(
    "chatgate_engine_time_to_first_token_seconds", "Time from calling an engine to its first text",
    ["provider", "model"], buckets=ENGINE_BUCKETS,
)  # fmt: skip
engine_tokens = Counter(
    "chatgate_engine_tokens_total", "Tokens sent to (input) and produced by (output) engines",
    ["provider", "model", "direction"],
)  # fmt: skip
engine_errors = Counter(
    "chatgate_engine_errors_total", "Engine calls that failed, by chatgate error code",
    ["provider", "model", "code"],
)  # fmt: skip
engine_requests = Counter(
    "chatgate_engine_requests_total", "Engine calls started", ["provider", "model"]
)


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def forget_this_process() -> None:
    """At a worker's exit: its live gauges stop counting towards the sum."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())
