"""/metrics under `chatgate serve --workers 2`: whichever worker answers the scrape, it reports
what both workers counted (Prometheus's multiprocess mode), and live gauges sum live workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.conftest import Served

ROUTE = {"route": "/v1/assistants", "method": "GET", "status": "200"}


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def per_worker_counts(metrics_dir: Path) -> dict[str, float]:
    """The request counter as each worker process wrote it in its own file."""
    counts = {}
    for file in sorted(metrics_dir.glob("counter_*.db")):
        for family in MultiProcessCollector.merge([str(file)], accumulate=True):
            for s in family.samples:
                if s.name == "chatgate_http_requests_total" and s.labels == ROUTE:
                    counts[file.stem.removeprefix("counter_")] = s.value
    return counts


async def send_batch(url: str, count: int) -> None:
    """`count` requests at once, each on a connection of its own so either worker may take it."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        replies = await asyncio.gather(*(http.get("/v1/assistants") for _ in range(count)))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_every_scrape_sums_both_workers(two_workers: Served) -> None:
    url = two_workers.url
    before = sample(await scrape(url), "chatgate_http_requests_total", **ROUTE)
    sent = 0
    # Both workers accept from one socket; a few bounded batches make sure each took some.
    for _ in range(6):
        await send_batch(url, 30)
        sent += 30
        if sum(1 for n in per_worker_counts(two_workers.metrics_dir).values() if n > 0) >= 2:
            break
    workers = per_worker_counts(two_workers.metrics_dir)
    assert len([n for n in workers.values() if n > 0]) == 2, workers
    assert sum(workers.values()) == before + sent
    # Each scrape, on a fresh connection, is answered by either worker: all give the total.
    for _ in range(8):
        text = await scrape(url)
        assert sample(text, "chatgate_http_requests_total", **ROUTE) == before + sent
        assert sample(text, "chatgate_http_request_duration_seconds_count", route=ROUTE[
            "route"], method="GET") == before + sent  # fmt: skip
        # Live gauges sum the live workers: each SQLite pool holds at most 5 + 10 connections.
        assert sample(text, "chatgate_database_pool_connections_limit") == 30
        assert sample(text, "chatgate_dependency_up", dependency="database") == 1
        assert sample(text, "chatgate_http_requests_in_flight") == 0


async def test_engine_calls_from_both_workers_are_counted(two_workers: Served) -> None:
    engine = {"provider": "upstream", "model": "double-echo"}
    before = sample(await scrape(two_workers.url), "chatgate_engine_requests_total", **engine)
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=two_workers.url, limits=limits, timeout=30) as http:

        async def ask(i: int) -> None:
            session = await http.post("/v1/sessions", json={"assistant_id": "echo"})
            assert session.status_code == 201, session.text
            reply = await http.post(
                f"/v1/sessions/{session.json()['id']}/messages", json={"content": f"question {i}"}
            )
            assert reply.status_code == 200, reply.text

        await asyncio.gather(*(ask(i) for i in range(12)))
    text = await scrape(two_workers.url)
    assert sample(text, "chatgate_engine_requests_total", **engine) == before + 12
    assert sample(text, "chatgate_engine_duration_seconds_count", **engine) == before + 12
    assert sample(text, "chatgate_engine_tokens_total", **engine, direction="output") > 0
