"""Sessions: creation (idempotent by client-made id), listing, paging, renaming, deleting, and
every endpoint's refusal to show one user's session to another."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from chatgate.audit.models import AuditEvent
from chatgate.chat.models import Message
from tests.conftest import Caller, Gateway, assert_error, parse_sse, read_database

SESSION_KEYS = {"id", "assistant_id", "title", "created_at", "updated_at", "message_count"}


def stamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0, value
    return parsed


async def list_all(caller: Caller, **params: Any) -> list[dict[str, Any]]:
    response = await caller.http.get("/v1/sessions", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def add_note(caller: Caller, session_id: str, content: str = "a note") -> dict[str, Any]:
    response = await caller.http.post(
        "/v1/history", json={"session_id": session_id, "role": "user", "content": content}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_answers_201_with_the_session(alice: Caller) -> None:
    response = await alice.http.post(
        "/v1/sessions", json={"assistant_id": "support", "title": "  Delivery question  "}
    )
    assert response.status_code == 201, response.text
    session = response.json()
    assert set(session) >= SESSION_KEYS
    assert uuid.UUID(session["id"])
    assert session["assistant_id"] == "support"
    assert session["title"] == "Delivery question"
    assert session["message_count"] == 0
    assert stamp(session["created_at"]) == stamp(session["updated_at"])
    fetched = await alice.http.get(f"/v1/sessions/{session['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == session


async def test_client_made_id_is_idempotent_for_its_owner(alice: Caller) -> None:
    session_id = str(uuid.uuid4())
    body = {"assistant_id": "echo", "id": session_id, "title": "first"}
    first = await alice.http.post("/v1/sessions", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == session_id
    again = await alice.http.post("/v1/sessions", json={**body, "title": "second"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert [s["id"] for s in await list_all(alice)] == [session_id]


async def test_concurrent_retries_of_one_client_id_make_one_session(alice: Caller) -> None:
    session_id = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(
            alice.http.post("/v1/sessions", json={"assistant_id": "echo", "id": session_id})
            for _ in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [201], [r.text for r in responses]
    assert {r.json()["id"] for r in responses} == {session_id}
    assert [s["id"] for s in await list_all(alice)] == [session_id]


async def test_another_users_id_is_not_found(alice: Caller, bob: Caller) -> None:
    session = await alice.new_session("echo", title="mine")
    taken = await bob.http.post("/v1/sessions", json={"assistant_id": "echo", "id": session["id"]})
    # As for any id not the caller's: a 409 would tell bob that alice's session exists.
    assert_error(taken, 404, "session_not_found")
    assert "mine" not in taken.text
    assert await list_all(bob) == []
    assert (await alice.http.get(f"/v1/sessions/{session['id']}")).json() == session


async def test_list_is_most_recently_updated_first_and_only_the_callers(
    alice: Caller, bob: Caller
) -> None:
    first = await alice.new_session("echo", title="first")
    second = await alice.new_session("support", title="second")
    third = await alice.new_session("echo", title="third")
    await bob.new_session("echo", title="bob's")
    assert [s["id"] for s in await list_all(alice)] == [third["id"], second["id"], first["id"]]
    await add_note(alice, first["id"])
    listed = await list_all(alice)
    assert [s["id"] for s in listed] == [first["id"], third["id"], second["id"]]
    assert listed[0]["message_count"] == 1
    renamed = await alice.http.patch(f"/v1/sessions/{second['id']}", json={"title": "renamed"})
    assert renamed.status_code == 200
    assert [s["id"] for s in await list_all(alice)] == [second["id"], first["id"], third["id"]]
    assert [s["title"] for s in await list_all(bob)] == ["bob's"]


async def test_cursor_pages_cover_every_session_once(alice: Caller, bob: Caller) -> None:
    created = [(await alice.new_session("echo"))["id"] for _ in range(25)]
    await bob.new_session("echo")
    seen: list[str] = []
    pages: list[tuple[int, bool]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        response = await alice.http.get("/v1/sessions", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [s["id"] for s in page["data"]]
        pages.append((len(page["data"]), page["has_more"]))
        assert (page["next_cursor"] is not None) == page["has_more"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
        assert len(pages) < 5, "paging does not end"
    assert pages == [(10, True), (10, True), (5, False)]
    assert seen == list(reversed(created))


async def test_a_page_that_ends_exactly_has_no_more(alice: Caller) -> None:
    for _ in range(4):
        await alice.new_session("echo")
    first = (await alice.http.get("/v1/sessions", params={"limit": 2})).json()
    assert first["has_more"] is True
    second = (
        await alice.http.get("/v1/sessions", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert len(second["data"]) == 2
    assert second["has_more"] is False and second["next_cursor"] is None


async def test_list_filters_by_assistant(alice: Caller) -> None:
    echo = [(await alice.new_session("echo"))["id"] for _ in range(3)]
    support = [(await alice.new_session("support"))["id"] for _ in range(2)]
    assert [s["id"] for s in await list_all(alice, assistant_id="support")] == support[::-1]
    assert [s["id"] for s in await list_all(alice, assistant_id="echo")] == echo[::-1]
    assert await list_all(alice, assistant_id="tiny") == []
    page = (
        await alice.http.get("/v1/sessions", params={"assistant_id": "echo", "limit": 2})
    ).json()
    rest = (
        await alice.http.get(
            "/v1/sessions",
            params={"assistant_id": "echo", "limit": 2, "cursor": page["next_cursor"]},
        )
    ).json()
    assert [s["id"] for s in page["data"] + rest["data"]] == echo[::-1]
    assert rest["has_more"] is False


async def test_rename(alice: Caller) -> None:
    session = await alice.new_session("echo", title="old")
    response = await alice.http.patch(f"/v1/sessions/{session['id']}", json={"title": "  new  "})
    assert response.status_code == 200, response.text
    renamed = response.json()
    assert renamed["title"] == "new"
    assert renamed["id"] == session["id"] and renamed["created_at"] == session["created_at"]
    assert stamp(renamed["updated_at"]) > stamp(session["updated_at"])
    assert (await alice.http.get(f"/v1/sessions/{session['id']}")).json() == renamed
    too_long = await alice.http.patch(f"/v1/sessions/{session['id']}", json={"title": "x" * 201})
    assert_error(too_long, 422, "validation_error")
    assert (await alice.http.get(f"/v1/sessions/{session['id']}")).json()["title"] == "new"


async def test_message_count_and_updated_at_follow_new_messages(alice: Caller) -> None:
    session = await alice.new_session("echo")
    sent = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "count my messages"}
    )
    assert sent.status_code == 200, sent.text
    after_turn = (await alice.http.get(f"/v1/sessions/{session['id']}")).json()
    assert after_turn["message_count"] == 2
    assert after_turn["title"] == "count my messages"
    assert stamp(after_turn["updated_at"]) > stamp(session["updated_at"])
    await add_note(alice, session["id"], "and a note")
    after_note = (await alice.http.get(f"/v1/sessions/{session['id']}")).json()
    assert after_note["message_count"] == 3
    assert after_note["title"] == "count my messages"
    assert stamp(after_note["updated_at"]) > stamp(after_turn["updated_at"])


async def test_delete_removes_the_session_everywhere_and_is_audited(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("echo")
    sid = session["id"]
    turn = await alice.http.post(f"/v1/sessions/{sid}/messages", json={"content": "bye"})
    answer_id = turn.json()["message"]["id"]
    deleted = await alice.http.delete(f"/v1/sessions/{sid}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    for response in await every_session_endpoint(alice, sid):
        assert_error(response, 404, "session_not_found")
    assert_error(await alice.http.get(f"/v1/tasks/{answer_id}"), 404, "task_not_found")
    assert sid not in [s["id"] for s in await list_all(alice)]
    async with read_database(gateway.settings.database_url) as db:
        events = (
            await db.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "session.deleted", AuditEvent.target_id == sid
                )
            )
        ).all()
        left = await db.scalar(
            select(func.count()).select_from(Message).where(Message.session_id == uuid.UUID(sid))
        )
    assert len(events) == 1
    assert events[0].user_id == alice.user_id
    assert events[0].target_type == "session"
    assert events[0].details["assistant_id"] == "echo"
    assert events[0].trace_id == deleted.headers["x-trace-id"]
    assert left == 0


async def every_session_endpoint(caller: Caller, session_id: str) -> list[Any]:
    """One request to each endpoint that names a session, as `caller`."""
    http = caller.http
    return [
        await http.get(f"/v1/sessions/{session_id}"),
        await http.patch(f"/v1/sessions/{session_id}", json={"title": "taken over"}),
        await http.get(f"/v1/history/{session_id}"),
        await http.post(
            "/v1/history", json={"session_id": session_id, "role": "user", "content": "hi"}
        ),
        await http.post(f"/v1/sessions/{session_id}/messages", json={"content": "hi"}),
        await http.post(
            f"/v1/sessions/{session_id}/messages",
            json={"content": "hi", "response_mode": "streaming"},
        ),
        await http.post(f"/v1/sessions/{session_id}/stop"),
        await http.delete(f"/v1/sessions/{session_id}"),
    ]


async def test_another_users_session_looks_exactly_like_a_missing_one(
    alice: Caller, bob: Caller
) -> None:
    session = await alice.new_session("echo", title="private")
    sid = session["id"]
    turn = await alice.http.post(f"/v1/sessions/{sid}/messages", json={"content": "secret"})
    answer_id = turn.json()["message"]["id"]
    before = await alice.history(sid)
    snapshot = (await alice.http.get(f"/v1/sessions/{sid}")).json()

    theirs = await every_session_endpoint(bob, sid)
    missing = await every_session_endpoint(bob, str(uuid.uuid4()))
    assert len(theirs) == len(missing)
    for foreign, absent in zip(theirs, missing, strict=True):
        assert_error(foreign, 404, "session_not_found")
        assert_error(absent, 404, "session_not_found")
        assert foreign.json()["error"]["message"] == absent.json()["error"]["message"]
        assert "secret" not in foreign.text and "private" not in foreign.text
    foreign_task = await bob.http.get(f"/v1/tasks/{answer_id}")
    absent_task = await bob.http.get(f"/v1/tasks/{uuid.uuid4()}")
    assert_error(foreign_task, 404, absent_task.json()["error"]["code"])
    assert foreign_task.json()["error"]["message"] == absent_task.json()["error"]["message"]
    assert "secret" not in foreign_task.text

    # Nothing bob did touched alice's session.
    assert (await alice.http.get(f"/v1/sessions/{sid}")).json() == snapshot
    assert snapshot["title"] == "private" and snapshot["message_count"] == 2
    assert await alice.history(sid) == before
    assert await list_all(bob) == []
    assert (await alice.http.get(f"/v1/tasks/{answer_id}")).status_code == 200


async def test_deleting_a_session_while_it_answers_ends_the_answer(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("echo")
    sid = session["id"]
    raw = ""
    deleted: Any = None
    async with alice.http.stream(
        "POST",
        f"/v1/sessions/{sid}/messages",
        json={"content": "[[slow 100 0.03]]", "response_mode": "streaming"},
    ) as response:
        async for chunk in response.aiter_text():
            raw += chunk
            if deleted is None and raw.count("event: delta") >= 3:
                deleted = await alice.http.delete(f"/v1/sessions/{sid}")
    assert deleted is not None and deleted.status_code == 204, raw
    events = parse_sse(raw)
    assert events[-1]["event"] == "message_end"
    assert events[-1]["data"]["message"]["status"] == "interrupted"
    assert_error(await alice.http.get(f"/v1/sessions/{sid}"), 404, "session_not_found")
    assert_error(await alice.http.get(f"/v1/history/{sid}"), 404, "session_not_found")
    # The session can be made again, empty, under the same client-made id.
    again = await alice.http.post("/v1/sessions", json={"assistant_id": "echo", "id": sid})
    assert again.status_code == 201
    assert (await alice.history(sid))["data"] == []


async def test_two_messages_sent_at_once_make_one_turn(alice: Caller) -> None:
    session = await alice.new_session("echo")
    sid = session["id"]
    answers = await asyncio.gather(
        *(
            alice.http.post(f"/v1/sessions/{sid}/messages", json={"content": f"[[slow 3 0.1]] {i}"})
            for i in range(3)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409], [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert_error(refused, 409, "turn_in_progress")
    page = await alice.history(sid)
    assert [m["role"] for m in page["data"]] == ["user", "assistant"]
    assert (await alice.http.get(f"/v1/sessions/{sid}")).json()["message_count"] == 2


async def test_a_deleted_conversation_leaves_no_text_in_the_sqlite_files(
    gateway: Gateway, alice: Caller
) -> None:
    if not gateway.settings.is_sqlite:
        return  # PostgreSQL: its own vacuum; this is about SQLite's file and write-ahead log
    secret = f"confidential-{uuid.uuid4().hex}"
    session = await alice.new_session()
    sent = await alice.http.post(f"/v1/sessions/{session['id']}/messages", json={"content": secret})
    assert sent.status_code == 200, sent.text
    assert (await alice.http.delete(f"/v1/sessions/{session['id']}")).status_code == 204
    path = Path(gateway.settings.database_url.split("///", 1)[1])
    files = [str(f) for f in (path, path.with_name(path.name + "-wal")) if f.exists()]
    # Read by another process: closing a file descriptor of a database in this one would drop
    # SQLite's POSIX locks on it for every connection of the process (the server runs here).
    grep = await asyncio.create_subprocess_exec(
        "grep", "-l", "-a", "-F", secret, *files, stdout=asyncio.subprocess.PIPE
    )
    found, _ = await grep.communicate()
    assert found == b"", found
