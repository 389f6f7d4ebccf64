"""The JSON logs of a real `chatgate serve`: a trace id from an error body finds the request's
access line and its stored messages; no message text ever reaches a log line; the trace id a
caller sends travels to the engine and back."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from chatgate.audit.models import AuditEvent
from chatgate.chat.models import Message
from tests.conftest import read_database
from tests.observability.conftest import Served

MESSAGES_ROUTE = "/v1/sessions/{session_id}/messages"


async def lines_with(served: Served, trace_id: str, *, logger: str) -> list[dict[str, Any]]:
    """The JSON lines of one logger stamped with a trace id (lines are written by a thread)."""
    for _ in range(100):
        found = [
            r
            for r in served.json_lines()
            if r.get("trace_id") == trace_id and r["logger"] == logger
        ]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


async def test_a_trace_id_from_an_error_body_finds_its_log_line_and_stored_messages(
    two_workers: Served,
) -> None:
    secret = f"my-private-words-{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=30) as http:
        session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
        failed = await http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": f"{secret} [[status 500]]"},
        )
        answered = await http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": f"{secret} again"}
        )
    assert failed.status_code == 502, failed.text
    assert answered.status_code == 200, answered.text
    trace_id = failed.json()["error"]["trace_id"]
    assert trace_id == failed.headers["x-trace-id"]

    [access] = await lines_with(two_workers, trace_id, logger="chatgate.access")
    assert access["route"] == MESSAGES_ROUTE
    assert access["method"] == "POST"
    assert access["status"] == 502
    assert access["user"] == "local"
    assert access["duration_ms"] > 0
    assert access["engine_ms"] > 0
    assert "cache_hit" in access
    assert access["level"] == "info" and access["time"]

    async with read_database(two_workers.database_url) as db:
        stored = (
            await db.execute(select(Message).where(Message.trace_id == trace_id))
        ).scalars().all()  # fmt: skip
    assert {(m.role, m.status) for m in stored} == {("user", "complete"), ("assistant", "failed")}
    assert {m.session_id for m in stored} == {uuid.UUID(session["id"])}

    # The text users send is never logged, in any line of any logger, even on failure.
    assert not [line for line in two_workers.log_lines() if secret in line]
    # Every line a request wrote carries its trace id.
    answered_id = answered.headers["x-trace-id"]
    assert await lines_with(two_workers, answered_id, logger="chatgate.access")


async def test_a_callers_traceparent_is_the_trace_id_and_reaches_the_engine(
    two_workers: Served,
) -> None:
    trace_id = secrets.token_hex(16)
    parent = secrets.token_hex(8)
    content = f"traced {secrets.token_hex(4)}"
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=30) as http:
        session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
        reply = await http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": content}, headers=headers
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-trace-id"] == trace_id
        by_request_id = await http.get("/v1/assistants", headers={"X-Request-ID": "req-42.a"})
        assert by_request_id.headers["x-trace-id"] == "req-42.a"
        deleted = await http.delete(
            f"/v1/sessions/{session['id']}", headers={"X-Request-ID": "req-delete-1"}
        )
        assert deleted.status_code == 204
        audit = await http.get("/v1/admin/audit", params={"action": "session.deleted"})
    # The engine got the same trace id, under a parent of chatgate's own.
    api = two_workers.double.api
    sent = [
        h["traceparent"]
        for body, h in zip(api.requests, api.headers, strict=True)
        if any(m["content"] == content for m in body["messages"])
    ]
    assert len(sent) == 1
    version, sent_trace, sent_parent, flags = sent[0].split("-")
    assert (version, sent_trace, flags) == ("00", trace_id, "01")
    assert sent_parent != parent and len(sent_parent) == 16
    assert await lines_with(two_workers, "req-42.a", logger="chatgate.access")
    # The audit event of the deletion keeps the request's trace id.
    assert audit.status_code == 200, audit.text
    assert "req-delete-1" in {e["trace_id"] for e in audit.json()["data"]}
    async with read_database(two_workers.database_url) as db:
        event = (
            await db.execute(select(AuditEvent).where(AuditEvent.trace_id == "req-delete-1"))
        ).scalar_one()  # fmt: skip
    assert event.target_id == session["id"]


async def test_every_line_the_server_writes_is_json(two_workers: Served) -> None:
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=30) as http:
        assert (await http.get("/health")).status_code == 200
    lines = [line for line in two_workers.log_lines() if line.strip()]
    assert [line for line in lines if not line.startswith("{")] == []
    records = two_workers.json_lines()
    assert len(records) == len(lines)
    # uvicorn's own lines (its start-up here) come as JSON too.
    assert any(r["logger"] == "uvicorn.error" and "startup" in r["message"] for r in records)
