"""deploy/grafana: every dashboard query names metrics chatgate really exports, and a load run on
`chatgate serve --workers 2`, scraped by a real Prometheus with deploy/'s config, shows up in
the dashboard's own queries with the figures the load tool printed."""

from __future__ import annotations

import asyncio
import json
import re
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatgate.observability.metrics import ENGINE_BUCKETS, LATENCY_BUCKETS
from tests.conftest import Double, Gateway
from tests.deploy.conftest import ALERTS, DASHBOARD, run_prometheus
from tests.deploy.load import LoadReport, percentile, run_load
from tests.observability.conftest import serve_subprocess

METRIC = re.compile(r"\bchatgate_[a-z0-9_]+")


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title -> its PromQL expressions."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


def exported_names(text: str) -> set[str]:
    """Every series name a /metrics page declares, samples or not (a labelled metric no request
    has touched yet has its HELP and TYPE only)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    }


async def test_every_dashboard_and_alert_query_names_an_exported_metric(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        exported = exported_names((await http.get("/metrics")).text)
    queries = dashboard_queries()
    assert len(queries) >= 12
    named = {name for exprs in queries.values() for e in exprs for name in METRIC.findall(e)}
    assert named, "the dashboard queries no chatgate metric"
    assert named <= exported, sorted(named - exported)
    alert_names = set(METRIC.findall(ALERTS.read_text()))
    assert alert_names <= exported, sorted(alert_names - exported)
    # What the issue asks the dashboard to show is on it.
    titles = " / ".join(queries).lower()
    for wanted in (
        "requests per second", "p50 and p99", "error rate", "engine latency",
        "time to first token", "cache hit ratio", "tokens",
    ):  # fmt: skip
        assert wanted in titles, wanted


async def query(prometheus: str, expr: str, at: float) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as http:
        response = await http.get("/api/v1/query", params={"query": expr, "time": f"{at:.3f}"})
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def by_legend(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def same_bucket(measured: float, client_seconds: float, buckets: tuple[float, ...]) -> bool:
    """A histogram quantile can only place a value within its bucket; the server's own time is a
    little shorter than the client's, so one bucket lower is as good."""
    edges = (0.0, *buckets)
    index = bisect_left(buckets, client_seconds)  # client's bucket is (edges[i], edges[i + 1]]
    low = edges[max(index - 1, 0)]
    high = edges[min(index + 1, len(edges) - 1)]
    return low <= measured <= high


async def scrape_times(prometheus: str) -> list[float]:
    """When Prometheus scraped chatgate (every series of a scrape has that timestamp)."""
    result = await query(prometheus, 'up{job="chatgate"}[1h]', time.time())
    return [float(at) for at, _ in result[0]["values"]] if result else []


async def wait_for_scrapes(prometheus: str, count: int) -> None:
    """Until Prometheus has scraped chatgate `count` more times."""
    target = len(await scrape_times(prometheus)) + count
    for _ in range(300):
        if len(await scrape_times(prometheus)) >= target:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("Prometheus stopped scraping chatgate")


async def test_a_load_run_shows_up_on_the_dashboard_queries(
    tmp_path: Path, openai_double: Double, prometheus_server: str
) -> None:
    with (
        serve_subprocess(tmp_path, openai_double, workers=2) as served,
        run_prometheus(prometheus_server, tmp_path, served.url.removeprefix("http://")) as prom,
    ):
        # Every series the load moves exists before it starts (a series born mid-window loses
        # its first increase), and the window opens on quiet, already-scraped counters.
        await run_load(served.url, conversations=20, concurrency=2)
        await wait_for_scrapes(prom, 4)
        opened = time.time()
        report: LoadReport = await run_load(served.url, conversations=150, concurrency=6)
        await wait_for_scrapes(prom, 4)
        # The dashboard's range: from the last scrape before the load to the last one after,
        # so Prometheus has nothing to extrapolate and a rate times its range is the count.
        times = await scrape_times(prom)
        first, at = max(t for t in times if t <= opened), times[-1]
        window_ms = round((at - first) * 1000) + 1  # + 1 ms: ranges are open on the left
        seconds = window_ms / 1000

        async def panel(title: str) -> list[list[dict[str, Any]]]:
            exprs = dashboard_queries()[title]
            window = f"{window_ms}ms"
            return [await query(prom, e.replace("$__rate_interval", window), at) for e in exprs]

        total, _by_route = await panel("Requests per second")
        print(f"dashboard over {seconds:.3f} s: {scalar(total) * seconds:.1f} requests")
        assert round(scalar(total) * seconds) == report.requests
        p50, p99 = (scalar(r) for r in await panel("Latency p50 and p99"))
        print(f"dashboard: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        assert same_bucket(p50, percentile(report.latencies, 50), LATENCY_BUCKETS), p50
        assert same_bucket(p99, percentile(report.latencies, 99), LATENCY_BUCKETS), p99
        errors, _client_errors = await panel("Error rate (5xx share)")
        assert scalar(errors) == pytest.approx(report.error_rate, abs=1e-6)
        [hit_ratio] = await panel("Answer cache hit ratio")
        assert scalar(hit_ratio) == pytest.approx(report.cache_hit_ratio, abs=1e-6)
        [tokens] = await panel("Tokens per second")
        output = by_legend([r for r in tokens if r["metric"]["direction"] == "output"], "provider")
        assert round(output["upstream"] * seconds) == report.output_tokens
        # The engine's own times: what the double took, well within the client's latencies.
        for title in ("Engine latency p50 and p99", "Time to first token p50 and p99"):
            for result in await panel(title):
                value = by_legend(result, "provider")["upstream"]
                assert 0 < value <= ENGINE_BUCKETS[-1], (title, value)
                assert value <= percentile(report.latencies, 99) + ENGINE_BUCKETS[0], title
        [breakers] = await panel("Circuit breakers")
        assert by_legend(breakers, "provider") == {"upstream": 0.0}
        [in_use, pool_limit] = await panel("Database pool")
        assert 0 <= scalar(in_use) <= 30
        assert scalar(pool_limit) == 30
        [dependencies] = await panel("Dependencies up")
        assert by_legend(dependencies, "dependency") == {"database": 1.0}
        # The rules load and evaluate in a real Prometheus: nothing fires on a healthy run
        # beyond the error rate this load causes on purpose.
        async with httpx.AsyncClient(base_url=prom) as http:
            rules = (await http.get("/api/v1/rules")).json()["data"]["groups"]
        assert {r["health"] for g in rules for r in g["rules"]} == {"ok"}
