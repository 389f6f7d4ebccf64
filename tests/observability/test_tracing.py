"""OpenTelemetry spans, sent over OTLP/HTTP to a collector double: the request, its database
statements, its answer-cache look-up and its engine call, all under chatgate's own trace id."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatgate.main import create_app
from chatgate.observability.tracing import TracingMiddleware
from tests.conftest import Double, open_caller, remote_only_settings, serve_chatgate
from tests.doubles.otlp import OtlpCollector, ReceivedSpan
from tests.doubles.server import serve_app

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
MESSAGES_ROUTE = "POST /v1/sessions/{session_id}/messages"


@pytest.fixture
def collector() -> Iterator[tuple[str, OtlpCollector]]:
    double = OtlpCollector()
    with serve_app(double.app()) as url:
        yield url, double


def ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


async def test_request_database_cache_and_engine_spans_share_chatgates_trace_id(
    tmp_path: Path, openai_double: Double, collector: tuple[str, OtlpCollector]
) -> None:
    url, received = collector
    settings = remote_only_settings(
        f"sqlite+aiosqlite:///{tmp_path}/traced.db", openai_double.url, otlp_endpoint=url
    )
    question = f"tell me about spans {secrets.token_hex(4)}"
    caller_trace, caller_parent = secrets.token_hex(16), secrets.token_hex(8)
    async with serve_chatgate(settings) as gateway, open_caller(gateway) as alice:
        session = await alice.new_session("echo")
        first = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": question}
        )
        second = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "and again"},
            headers={"traceparent": f"00-{caller_trace}-{caller_parent}-01"},
        )
    # Shutting down sent every span still queued.
    assert first.status_code == 200 and second.status_code == 200
    trace_id = first.headers["x-trace-id"]
    spans = received.trace(trace_id)
    assert {s.service for s in spans} == {"chatgate"}

    [request] = [s for s in spans if s.kind == SERVER]
    assert request.name == MESSAGES_ROUTE
    assert request.parent_span_id == ""  # a new trace, rooted here
    assert request.attributes["http.route"] == "/v1/sessions/{session_id}/messages"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["chatgate.trace_id"] == trace_id
    assert request.attributes["chatgate.cache_hit"] is False

    statements = [s for s in spans if s.attributes.get("db.system") == "sqlite"]
    assert statements and all(s.kind == CLIENT for s in statements)
    assert any(s.attributes.get("db.statement", "").startswith("INSERT") for s in statements)
    assert all(request in ancestors(s, spans) for s in statements)

    [lookup] = [s for s in spans if s.name == "cache get"]
    assert request in ancestors(lookup, spans)

    [engine] = [s for s in spans if s.name == "chat double-echo"]
    assert engine.kind == CLIENT
    assert request in ancestors(engine, spans)
    assert engine.attributes["gen_ai.provider.name"] == "double"
    assert engine.attributes["gen_ai.usage.output_tokens"] > 0
    assert "first_token" in engine.events
    # The engine was told it was called from this very span.
    api = openai_double.api
    [sent] = [
        h["traceparent"]
        for body, h in zip(api.requests, api.headers, strict=True)
        if body["messages"][-1]["content"] == question
    ]
    assert sent == f"00-{trace_id}-{engine.span_id}-01"
    # No message text in any span.
    assert not [s for s in received.spans if question in repr(s.attributes)]

    # A caller's traceparent: its trace, with its span as the request's parent.
    assert second.headers["x-trace-id"] == caller_trace
    [continued] = [s for s in received.trace(caller_trace) if s.kind == SERVER]
    assert continued.parent_span_id == caller_parent
    assert any(s.name == "chat double-echo" for s in received.trace(caller_trace))


async def test_a_zero_sample_ratio_sends_no_spans_but_keeps_trace_ids(
    tmp_path: Path, openai_double: Double, collector: tuple[str, OtlpCollector]
) -> None:
    url, received = collector
    settings = remote_only_settings(
        f"sqlite+aiosqlite:///{tmp_path}/unsampled.db", openai_double.url,
        otlp_endpoint=url, trace_sample_ratio=0.0,
    )  # fmt: skip
    async with serve_chatgate(settings) as gateway, open_caller(gateway) as alice:
        session = await alice.new_session("echo")
        reply = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": "not sampled"}
        )
    assert reply.status_code == 200
    trace_id = reply.headers["x-trace-id"]
    assert received.spans == []
    # Still one trace id end to end; the engine is told the trace was not sampled.
    api = openai_double.api
    [sent] = [
        h["traceparent"]
        for body, h in zip(api.requests, api.headers, strict=True)
        if body["messages"][-1]["content"] == "not sampled"
    ]
    assert sent.startswith(f"00-{trace_id}-") and sent.endswith("-00")


def test_tracing_is_off_by_default(tmp_path: Path, openai_double: Double) -> None:
    settings = remote_only_settings(f"sqlite+aiosqlite:///{tmp_path}/off.db", openai_double.url)
    assert settings.otlp_endpoint is None
    app = create_app(settings)
    assert not [m for m in app.user_middleware if m.cls is TracingMiddleware]
