"""/metrics in Prometheus text format, with route templates (never raw paths) as labels."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Caller


async def scrape(caller: Caller) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await caller.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_and_engine_calls_are_counted(alice: Caller) -> None:
    before = await scrape(alice)
    session = await alice.new_session("echo")
    reply = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "count me"}
    )
    assert reply.status_code == 200
    await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "[[status 500]]"}
    )
    route_502 = {"route": "/v1/sessions/{session_id}/messages", "method": "POST", "status": "502"}
    for _ in range(50):  # a request is counted just after its last byte is sent
        after = await scrape(alice)
        if value(after, "chatgate_http_requests_total", **route_502) >= 1:
            break
        await asyncio.sleep(0.02)
    route = {"route": "/v1/sessions/{session_id}/messages", "method": "POST"}
    assert value(after, "chatgate_http_requests_total", **route, status="200") == (
        value(before, "chatgate_http_requests_total", **route, status="200") + 1
    )
    assert value(after, "chatgate_http_requests_total", **route, status="502") >= 1
    assert value(after, "chatgate_http_request_duration_seconds_count", **route) >= 2
    engine = {"provider": "double", "model": "double-echo"}
    assert (
        value(after, "chatgate_engine_requests_total", **engine)
        - value(before, "chatgate_engine_requests_total", **engine)
        == 2
    )
    assert value(after, "chatgate_engine_errors_total", **engine, code="upstream_error") >= 1
    assert value(after, "chatgate_engine_tokens_total", **engine, direction="output") > value(
        before, "chatgate_engine_tokens_total", **engine, direction="output"
    )
    assert value(after, "chatgate_engine_time_to_first_token_seconds_count", **engine) >= 1
    paths = {dict(labels).get("route") for (_, labels) in after}
    assert not any(p and session["id"] in p for p in paths)
