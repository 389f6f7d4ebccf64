"""GET /v1/me/export over real HTTP on SQLite and PostgreSQL: all of the caller's conversations
(answers blocking, streaming, interrupted, with citations, and an empty one) and nobody else's,
as the sessions and history APIs show them; a zip of one Markdown file per conversation; 401
without credentials; an audited, limited export; a service key's end user."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from chatgate.privacy.export import EXPORTS_PER_WINDOW
from chatgate.privacy.schemas import Export
from tests.auth.test_keys import new_key
from tests.conftest import Caller, Gateway, assert_error, make_token, open_caller, parse_sse
from tests.knowledge.test_answers import QUESTION, grounded_assistant

BOB_SECRET = "bob's parcel goes to 12 Quiet Lane"


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('export-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as client:
        yield client


async def send(caller: Caller, session_id: str, content: str, mode: str = "blocking") -> str:
    response = await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, "response_mode": mode}
    )
    assert response.status_code == 200, response.text
    return response.text


async def interrupted_answer(caller: Caller, session_id: str) -> None:
    """An answer stopped while it streams: stored `interrupted`, with the text so far."""
    body = {"content": "[[slow 100 0.03]]", "response_mode": "streaming"}
    path = f"/v1/sessions/{session_id}/messages"
    async with caller.http.stream("POST", path, json=body) as response:
        raw = ""
        stopped = False
        async for chunk in response.aiter_text():
            raw += chunk
            if raw.count("event: delta") >= 3 and not stopped:
                stop = await caller.http.post(f"/v1/sessions/{session_id}/stop")
                stopped = stop.json()["stopped"]
                assert stopped is True
    assert parse_sse(raw)[-1]["data"]["message"]["status"] == "interrupted"


async def export(caller: Caller, export_format: str = "json") -> httpx.Response:
    response = await caller.http.get("/v1/me/export", params={"format": export_format})
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    extension = "json" if export_format == "json" else "zip"
    assert disposition.startswith('attachment; filename="chatgate-export-')
    assert disposition.endswith(f'.{extension}"')
    assert response.headers["cache-control"] == "no-store"
    return response


async def as_shown_by_the_api(caller: Caller, session_id: str) -> dict[str, Any]:
    """A session as GET /v1/sessions/{id} shows it, with every message as history shows it."""
    session: dict[str, Any] = (await caller.http.get(f"/v1/sessions/{session_id}")).json()
    messages: list[dict[str, Any]] = []
    before = None
    while True:
        page = await caller.history(session_id, limit=200, **({"before": before} if before else {}))
        messages[:0] = page["data"]
        if not (before := page["next_before"]):
            return {**session, "messages": messages}


async def test_an_export_holds_all_of_the_callers_conversations_and_nobody_elses(
    alice: Caller, bob: Caller, admin: httpx.AsyncClient
) -> None:
    assistant_id, _, document_id = await grounded_assistant(admin)
    blocking = await alice.new_session("echo", title="Parcel to Lyon")
    await send(alice, blocking["id"], "Where is my parcel to Lyon?")
    await send(alice, blocking["id"], "And the invoice, please.")
    streamed = await alice.new_session("support")
    assert "event: message_end" in await send(alice, streamed["id"], "streamed words", "streaming")
    stopped = await alice.new_session("echo")
    await interrupted_answer(alice, stopped["id"])
    cited = await alice.new_session(assistant_id)
    await send(alice, cited["id"], QUESTION)
    empty = await alice.new_session("echo", title="Nothing said yet")
    bobs = await bob.new_session("echo")
    await send(bob, bobs["id"], BOB_SECRET)

    response = await export(alice)
    assert response.headers["content-type"] == "application/json"
    exported = response.json()
    Export.model_validate(exported)  # the shape /docs gives
    assert exported["user_id"] == alice.user_id
    assert datetime.fromisoformat(exported["exported_at"]).tzinfo is not None
    ids = [blocking["id"], streamed["id"], stopped["id"], cited["id"], empty["id"]]
    assert [s["id"] for s in exported["sessions"]] == ids  # in the order they were started
    for session in exported["sessions"]:
        assert session == await as_shown_by_the_api(alice, session["id"])
    by_id = {s["id"]: s for s in exported["sessions"]}
    assert [m["content"] for m in by_id[blocking["id"]]["messages"]][::2] == [
        "Where is my parcel to Lyon?", "And the invoice, please.",
    ]  # fmt: skip
    assert by_id[streamed["id"]]["messages"][1]["content"] == "echo: streamed words"
    assert by_id[stopped["id"]]["messages"][1]["status"] == "interrupted"
    assert by_id[stopped["id"]]["messages"][1]["content"]
    citations = by_id[cited["id"]]["messages"][1]["citations"]
    assert [c["document_id"] for c in citations] == [document_id]
    assert by_id[empty["id"]]["messages"] == []
    assert BOB_SECRET not in response.text and bobs["id"] not in response.text

    audit = await admin.get(
        "/v1/admin/audit", params={"action": "user.exported", "user_id": alice.user_id}
    )
    (event,) = audit.json()["data"]
    assert event["details"] == {"format": "json"} and event["target_id"] == alice.user_id


async def test_an_answer_still_being_written_is_exported_as_it_stands(alice: Caller) -> None:
    session = await alice.new_session("echo")
    body = {"content": "[[slow 40 0.05]]", "response_mode": "streaming"}
    path = f"/v1/sessions/{session['id']}/messages"
    async with alice.http.stream("POST", path, json=body) as response:
        raw = ""
        exported: dict[str, Any] = {}
        async for chunk in response.aiter_text():  # read to the end: leaving would stop it
            raw += chunk
            # The text so far is saved every stream_flush_seconds (0.2 s here).
            if raw.count("event: delta") >= 12 and not exported:
                (exported,) = (await export(alice)).json()["sessions"]
    question, answer = exported["messages"]
    assert question["content"] == "[[slow 40 0.05]]"
    assert answer["status"] == "streaming" and answer["content"].startswith("w0 w1")


async def test_the_markdown_export_is_a_zip_of_one_file_per_conversation(alice: Caller) -> None:
    first = await alice.new_session("echo", title="Refund ../../etc/passwd: why?*")
    await send(alice, first["id"], "I want a refund for order 1234")
    second = await alice.new_session("support", title="Second\nline\ttwo")
    await send(alice, second["id"], "Second **conversation** here")
    untitled = await alice.new_session("echo")
    # The same name but for the letter case: one file system in two would take it for the first.
    again = await alice.new_session("echo", title="REFUND ../../etc/passwd: why?*")

    response = await export(alice, "markdown")
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        texts = [archive.read(name).decode() for name in names]
    assert len(names) == 4 and len(set(names)) == 4
    for name in names:
        assert name.endswith(".md") and "/" not in name and "\\" not in name
        assert not set(name) & set('<>:"|?*') and ".." not in name
    days = [s["created_at"][:10] for s in (first, second, untitled, again)]
    assert names == [
        f"{days[0]} Refund etc passwd why.md", f"{days[1]} Second line two.md",
        f"{days[2]} Untitled.md",
        f"{days[3]} REFUND etc passwd why{' (2)' if days[3] == days[0] else ''}.md",
    ]  # fmt: skip
    assert texts[0].startswith("# Refund ../../etc/passwd: why?*\n")
    assert "- Assistant: echo" in texts[0] and f"- Conversation id: {first['id']}" in texts[0]
    assert "## User · " in texts[0] and "I want a refund for order 1234" in texts[0]
    assert "## Assistant · " in texts[0] and "echo: I want a refund for order 1234" in texts[0]
    assert names[1].endswith(" Second line two.md")
    assert texts[1].startswith("# Second line two\n\n- Assistant: support\n")
    assert "Second **conversation** here" in texts[1]
    assert texts[2].startswith("# Untitled conversation\n") and "## User" not in texts[2]
    assert untitled["id"] in texts[2]


async def test_markdown_shows_citations_and_how_an_answer_ended(
    alice: Caller, admin: httpx.AsyncClient
) -> None:
    assistant_id, _, _ = await grounded_assistant(admin)
    cited = await alice.new_session(assistant_id)
    await send(alice, cited["id"], QUESTION)
    stopped = await alice.new_session("echo")
    await interrupted_answer(alice, stopped["id"])
    with zipfile.ZipFile(io.BytesIO((await export(alice, "markdown")).content)) as archive:
        cited_text, stopped_text = (archive.read(name).decode() for name in archive.namelist())
    assert "Sources:\n\n- [1] warranty.md (score " in cited_text
    assert "  > The Zephyr 9 kettle carries a warranty of three years" in cited_text
    assert "_Interrupted: stopped before it was finished; the text so far is kept (" in (
        stopped_text
    )


async def test_an_export_needs_credentials(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        for export_format in ("json", "markdown"):
            response = await anonymous.get("/v1/me/export", params={"format": export_format})
            assert_error(response, 401, "missing_token")
        bad = await anonymous.get("/v1/me/export", headers={"Authorization": "Bearer nonsense"})
        assert bad.status_code == 401


async def test_a_user_without_conversations_gets_a_valid_empty_export(alice: Caller) -> None:
    exported = json.loads((await export(alice)).content)
    assert exported["sessions"] == [] and exported["user_id"] == alice.user_id
    with zipfile.ZipFile(io.BytesIO((await export(alice, "markdown")).content)) as archive:
        assert archive.namelist() == []


async def test_an_unknown_format_is_refused(alice: Caller) -> None:
    response = await alice.http.get("/v1/me/export", params={"format": "pdf"})
    assert response.status_code == 422


async def test_exports_are_limited_per_user(alice: Caller, bob: Caller) -> None:
    for _ in range(EXPORTS_PER_WINDOW):
        await export(alice)
    refused = await alice.http.get("/v1/me/export")
    assert_error(refused, 429, "export_rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 600
    await export(bob)  # another user's allowance is their own


async def test_a_service_key_exports_the_end_user_it_names(
    admin: httpx.AsyncClient, gateway: Gateway
) -> None:
    key = await new_key(admin, name="crm backend", kind="service")
    async with open_caller(gateway.url, "shopper-export", token=str(key["secret"])) as service:
        service.http.headers["X-Chatgate-User"] = "shopper-export"
        session = await service.new_session("echo")
        await send(service, session["id"], "my order for the shopper")
        exported = (await export(service)).json()
        service.http.headers["X-Chatgate-User"] = "another-shopper"
        other = (await export(service)).json()
    assert exported["user_id"] == "shopper-export"
    assert [s["id"] for s in exported["sessions"]] == [session["id"]]
    assert other["user_id"] == "another-shopper" and other["sessions"] == []
    audit = await admin.get(
        "/v1/admin/audit", params={"action": "user.exported", "user_id": "shopper-export"}
    )
    assert [e["details"] for e in audit.json()["data"]] == [{"format": "json", "key_id": key["id"]}]
