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
guard_hits = Counter(
    "chatgate_guard_hits_total", "Guard finds: personal data by kind, or injection, by the "
    "action taken (block, mask, route, flag)", ["kind", "action"],
)  # fmt: skip
handoff_webhook_failures = Counter(
    "chatgate_handoff_webhook_failures_total", "Hand-off webhook calls that failed: tried again "
    "(retried) or the last try (gave_up)", ["outcome"],
)  # fmt: skip
engine_retries = Counter(
    "chatgate_engine_retries_total", "Engine calls tried again before their first byte, by the "
    "error that made them retry", ["provider", "code"],
)  # fmt: skip
breaker_state = Gauge(
    "chatgate_breaker_state", "Circuit breaker per engine: 0 closed, 1 half-open, 2 open",
    ["provider"], multiprocess_mode="livemax",
)  # fmt: skip
breaker_transitions = Counter(
    "chatgate_breaker_transitions_total", "Circuit breaker changes, by the state entered",
    ["provider", "to"],
)  # fmt: skip
breaker_refusals = Counter(
    "chatgate_breaker_refusals_total", "Engine calls refused by an open circuit breaker",
    ["provider"],
)  # fmt: skip
breaker_store_errors = Counter(
    "chatgate_breaker_store_errors_total", "Circuit breaker checks that could not reach Redis"
)
fallbacks = Counter(
    "chatgate_fallbacks_total", "Answers passed on from a failed engine to the next one in an "
    "assistant's chain, or to its canned answer (to=\"answer\")", ["provider", "to"],
)  # fmt: skip
cost = Counter(
    "chatgate_cost_total", "What engine calls cost at the prices of /v1/admin/prices, in their "
    "currency (engine=\"cache\" for cached answers, which cost nothing)", ["engine", "model"],
)  # fmt: skip
usage_dropped = Counter(
    "chatgate_usage_dropped_total", "Engine calls the usage ledger could not keep: its buffer "
    "was full while the database did not take its rows",
)  # fmt: skip

rate_limit_rejections = Counter(
    "chatgate_rate_limit_rejections_total", "Requests refused by a rate limit", ["limit"]
)
rate_limit_errors = Counter(
    "chatgate_rate_limit_storage_errors_total", "Rate-limit checks that could not reach storage"
)
budget_refusals = Counter(
    "chatgate_budget_refusals_total", "Calls refused as over a budget, by the budget's scope",
    ["scope"],
)  # fmt: skip
budget_edge_admissions = Counter(
    "chatgate_budget_edge_admissions_total", "Calls admitted whose whole possible answer did "
    "not fit what was left of a budget (each may overspend it by up to that answer)",
)  # fmt: skip
budget_store_errors = Counter(
    "chatgate_budget_store_errors_total", "Budget store calls that failed, by operation "
    "(reserve: the call refused; settle: its spend lost; read)", ["operation"],
)  # fmt: skip
cache_requests = Counter(
    "chatgate_cache_requests_total",
    "Context-free questions seen by the answer cache, by result (hit, miss, bypass)",
    ["result"],
)
# Read when /metrics is scraped (see probes.py): shared state, so the latest reading wins.
dependency_up = Gauge(
    "chatgate_dependency_up", "1 when the dependency answered a check at the last scrape, else 0",
    ["dependency"], multiprocess_mode="livemostrecent",
)  # fmt: skip
task_queue_depth = Gauge(
    "chatgate_task_queue_depth", "Async answers waiting in the Redis task queue",
    multiprocess_mode="livemostrecent",
)  # fmt: skip
# Each process's own pool, counted as connections come and go, summed over live processes.
database_pool_in_use = Gauge(
    "chatgate_database_pool_connections_in_use", "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)  # fmt: skip
database_pool_limit = Gauge(
    "chatgate_database_pool_connections_limit",
    "Most database connections the pool may hold (its size plus overflow)",
    multiprocess_mode="livesum",
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
