"""Where personal data may not go: a real `chatgate serve`, logging at DEBUG and exporting spans
to a collector, is sent known personal values through every path (`paths.py`), succeeding and
failing; then every output is searched for each value: the process's log lines, every exported
span byte, the /metrics text, the audit trail and every error body.

What counts: message text, session titles, e-mail addresses, phone numbers and ID numbers must
appear in none of them. User ids, session ids, message ids and assistant ids are identifiers,
not personal values: outputs name them so that an operator can find a request."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.conftest import JWT_AUDIENCE, JWT_SECRET, Double
from tests.doubles.otlp import OtlpCollector
from tests.doubles.server import serve_app
from tests.personal_data.paths import (
    EVERY_PATH,
    MAX_CONTENT_CHARS,
    PERSONAL_VALUES,
    REQUESTS_PER_MINUTE,
    TEXT,
    TITLE,
    Probe,
)
from tests.serve_process import chatgate_serve, serve_environment


class RawCollector(OtlpCollector):
    """The collector double, keeping each export's bytes too: protobuf writes strings as they
    are, so a value in any span, attribute, event or resource is found in them."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.bodies.append(body)
        return await super().traces(request)


def config(double: Double) -> dict[str, object]:
    provider = {
        "id": "double", "type": "openai", "base_url": f"{double.url}/v1",
        "api_key_env": "DOUBLE_API_KEY", "retries": {"attempts": 0},
        "breaker": {"enabled": False},
    }  # fmt: skip

    def assistant(id: str, guards: dict[str, str], context: int = 8000) -> dict[str, object]:
        return {
            "id": id, "name": id, "provider": "double", "model": f"double-{id}",
            "system_prompt": "Echo the user.", "guards": guards,
            "max_context_tokens": context, "max_answer_tokens": 40,
        }  # fmt: skip

    return {
        "providers": [provider],
        "assistants": [
            assistant("echo", {"pii": "off", "injection": "off"}),
            assistant("masked", {"pii": "mask", "injection": "flag"}),
            assistant("pii-blocker", {"pii": "block", "injection": "off"}),
            assistant("injection-blocker", {"pii": "off", "injection": "block"}),
            assistant("tiny", {"pii": "off", "injection": "off"}, context=80),
        ],
    }


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[RawCollector, str]]:
    collector = RawCollector()
    with serve_app(collector.app()) as url:
        yield collector, url


def test_no_personal_value_reaches_logs_spans_metrics_audit_or_errors(
    tmp_path: Path, database_url: str, openai_double: Double, collector: tuple[RawCollector, str]
) -> None:
    spans, collector_url = collector
    spans.bodies.clear()
    spans.spans.clear()
    env = serve_environment(
        tmp_path, CHATGATE_DATABASE_URL=database_url,
        CHATGATE_AUTH_MODE="jwt", CHATGATE_JWT_SECRET=JWT_SECRET,
        CHATGATE_JWT_AUDIENCE=JWT_AUDIENCE, CHATGATE_LOG_LEVEL="DEBUG",
        CHATGATE_OTLP_ENDPOINT=collector_url, OTEL_BSP_SCHEDULE_DELAY="100",
        CHATGATE_MAX_CONTENT_CHARS=str(MAX_CONTENT_CHARS),
        CHATGATE_RATE_LIMITS__REQUESTS_PER_MINUTE=str(REQUESTS_PER_MINUTE),
        CHATGATE_RATE_LIMITS__IP_REQUESTS_PER_MINUTE="100000",
        CHATGATE_CACHE__ENABLED="false", DOUBLE_API_KEY="sk-double",
    )  # fmt: skip
    with chatgate_serve(tmp_path, config(openai_double), env=env) as served:
        probe = Probe(served.url)
        for path in EVERY_PATH:
            path(probe)
        with probe.client(f"admin-{uuid.uuid4().hex[:8]}", admin=True) as admin:
            metrics = admin.get("/metrics").text
            audit = read_audit(admin)
    # The process has stopped: its last log lines are written and its last spans exported.
    outputs = [
        ("log lines", served.output_text()),
        ("spans", b"".join(spans.bodies).decode("utf-8", errors="replace")),
        ("metrics", metrics),
        ("audit events", audit),
        *((f"the error body of {what}", body) for what, body in probe.error_bodies),
    ]
    leaks = [
        f"{value!r} in {where}: …{text[max(0, text.find(value) - 150) : text.find(value) + 80]}…"
        for where, text in outputs
        for value in PERSONAL_VALUES
        if value in text
    ]
    assert not leaks, "\n".join(leaks)
    # The values went in, and every output was there to search.
    answers = "".join(probe.answers)
    assert TEXT in answers and TITLE in answers
    assert probe.codes >= EVERY_CODE, EVERY_CODE - probe.codes
    assert '"chatgate.access"' in served.output_text()
    assert {"chat double-echo", "POST /v1/sessions/{session_id}/messages"} <= {
        span.name for span in spans.spans
    }
    assert "guard.blocked" in audit and "guard.masked" in audit


EVERY_CODE = {
    "validation_error", "invalid_json", "invalid_request", "content_too_large", "too_large",
    "context_length_exceeded", "pii_blocked", "prompt_injection_blocked", "upstream_error",
    "upstream_rejected", "rate_limited", "session_not_found", "assistant_not_found",
    "model_not_found", "invalid_session_id", "invalid_task_id", "task_not_found",
}  # fmt: skip


def read_audit(admin: httpx.Client) -> str:
    pages, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/v1/admin/audit", params=params)
        assert page.status_code == 200, page.text
        pages.append(page.text)
        cursor = page.json()["next_cursor"]
        if not cursor:
            return "\n".join(pages)
