"""History: recording messages, keyset pages read backwards, and history that survives restarts."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from chatgate.chat.models import Message
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from tests.conftest import (
    Caller,
    Double,
    Gateway,
    assert_error,
    make_token,
    open_caller,
    read_database,
    remote_only_settings,
    serve_chatgate,
)

MESSAGE_KEYS = {"id", "session_id", "role", "content", "status", "created_at"}


def recorder(caller: Caller, role: str) -> dict[str, str] | None:
    """Only admins and service keys may record system or assistant messages: the caller, as one."""
    if role == "user":
        return None
    return {"Authorization": f"Bearer {make_token(caller.user_id, admin=True)}"}


async def record(caller: Caller, session_id: str, content: str, role: str = "user") -> str:
    response = await caller.http.post(
        "/v1/history", json={"session_id": session_id, "role": role, "content": content},
        headers=recorder(caller, role),
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def test_append_records_each_role_without_calling_a_model(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("echo")
    calls_before = len(gateway.double.api.requests)
    made = []
    for role, content in [
        ("system", "Answer in French."),
        ("user", "Bonjour"),
        ("assistant", "Bonjour ! Comment puis-je aider ?"),
    ]:
        response = await alice.http.post(
            "/v1/history", json={"session_id": session["id"], "role": role, "content": content},
            headers=recorder(alice, role),
        )  # fmt: skip
        assert response.status_code == 201, response.text
        message = response.json()
        assert set(message) >= MESSAGE_KEYS
        assert message["role"] == role and message["content"] == content
        assert message["status"] == "complete" and message["session_id"] == session["id"]
        made.append(message)
    assert len(gateway.double.api.requests) == calls_before
    page = await alice.history(session["id"])
    assert page["data"] == made
    assert page["session_id"] == session["id"]
    assert page["has_more"] is False and page["next_before"] is None
    stored = (await alice.http.get(f"/v1/sessions/{session['id']}")).json()
    assert stored["message_count"] == 3
    assert stored["title"] == "Bonjour"


async def test_empty_session_has_an_empty_history(alice: Caller) -> None:
    session = await alice.new_session("echo")
    page = await alice.history(session["id"])
    assert page["session_id"] == session["id"]
    assert page["data"] == [] and page["has_more"] is False and page["next_before"] is None


async def test_pages_are_the_newest_before_the_cursor_listed_oldest_first(alice: Caller) -> None:
    session = await alice.new_session("echo")
    ids = [await record(alice, session["id"], f"m{i}") for i in range(7)]

    newest = await alice.history(session["id"], limit=3)
    assert [m["content"] for m in newest["data"]] == ["m4", "m5", "m6"]
    assert newest["has_more"] is True and newest["next_before"] == ids[4]

    middle = await alice.history(session["id"], limit=3, before=newest["next_before"])
    assert [m["content"] for m in middle["data"]] == ["m1", "m2", "m3"]
    assert middle["has_more"] is True and middle["next_before"] == ids[1]

    oldest = await alice.history(session["id"], limit=3, before=middle["next_before"])
    assert [m["content"] for m in oldest["data"]] == ["m0"]
    assert oldest["has_more"] is False and oldest["next_before"] is None

    exact = await alice.history(session["id"], limit=7)
    assert [m["id"] for m in exact["data"]] == ids and exact["has_more"] is False
    # `before` any message: only what is strictly older.
    assert [m["id"] for m in (await alice.history(session["id"], before=ids[3]))["data"]] == ids[:3]
    assert (await alice.history(session["id"], before=ids[0]))["data"] == []


async def test_walking_back_a_long_session_returns_every_message_in_order(alice: Caller) -> None:
    session = await alice.new_session("echo")
    roles = ["user", "assistant"]
    ids = [await record(alice, session["id"], f"line {i}", roles[i % 2]) for i in range(120)]
    pages: list[list[dict[str, Any]]] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 50}
        if before:
            params["before"] = before
        page = await alice.history(session["id"], **params)
        pages.append(page["data"])
        before = page["next_before"]
        if not page["has_more"]:
            assert before is None
            break
        assert before == page["data"][0]["id"]
    assert [len(p) for p in pages] == [50, 50, 20]
    walked = [m for page in reversed(pages) for m in page]
    assert [m["id"] for m in walked] == ids
    assert [m["content"] for m in walked] == [f"line {i}" for i in range(120)]
    assert [m["role"] for m in walked] == [roles[i % 2] for i in range(120)]
    count = (await alice.http.get(f"/v1/sessions/{session['id']}")).json()["message_count"]
    assert count == 120


async def test_a_turn_lists_question_then_answer(alice: Caller) -> None:
    session = await alice.new_session("echo")
    for word in ("history one", "history two", "history three"):
        sent = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": word}
        )
        assert sent.status_code == 200
    page = await alice.history(session["id"])
    assert [m["content"] for m in page["data"]] == [
        "history one",
        "echo: history one",
        "history two",
        "echo: history two",
        "history three",
        "echo: history three",
    ]


async def test_page_size_and_cursor_are_checked(alice: Caller) -> None:
    session = await alice.new_session("echo")
    await record(alice, session["id"], "keep")
    for limit in (0, 201, -1, "many"):
        response = await alice.http.get(f"/v1/history/{session['id']}", params={"limit": limit})
        assert_error(response, 422, "validation_error")
    for limit in (1, 200):
        assert len((await alice.history(session["id"], limit=limit))["data"]) == 1
    for before in ("yesterday", "1234", "' OR 1=1 --"):
        response = await alice.http.get(f"/v1/history/{session['id']}", params={"before": before})
        assert_error(response, 422, "invalid_before")


async def test_history_survives_a_restart(tmp_path: Path, openai_double: Double) -> None:
    settings = remote_only_settings(f"sqlite+aiosqlite:///{tmp_path}/chat.db", openai_double.url)
    async with serve_chatgate(settings) as url, open_caller(url, "restarter") as caller:
        session = await caller.new_session("echo")
        for text in ("first question", "second question"):
            sent = await caller.http.post(
                f"/v1/sessions/{session['id']}/messages", json={"content": text}
            )
            assert sent.status_code == 200, sent.text
        await record(caller, session["id"], "a note", "system")
        before = await caller.history(session["id"])
        listed = (await caller.http.get("/v1/sessions")).json()
    assert len(before["data"]) == 5
    async with serve_chatgate(settings) as url, open_caller(url, "restarter") as caller:
        assert await caller.history(session["id"]) == before
        assert (await caller.http.get("/v1/sessions")).json() == listed
        # The conversation goes on with its context intact.
        sent = await caller.http.post(
            f"/v1/sessions/{session['id']}/messages", json={"content": "third question"}
        )
        assert sent.status_code == 200, sent.text
        contents = [m["content"] for m in openai_double.api.requests[-1]["messages"]]
        assert contents == [
            "Echo the user.",
            "first question",
            "echo: first question",
            "second question",
            "echo: second question",
            "a note",
            "third question",
        ]


async def test_an_answer_left_streaming_is_interrupted_at_restart_with_its_text(
    tmp_path: Path, openai_double: Double
) -> None:
    settings = remote_only_settings(f"sqlite+aiosqlite:///{tmp_path}/chat.db", openai_double.url)
    async with serve_chatgate(settings) as url, open_caller(url, "crasher") as caller:
        session = await caller.new_session("echo")
        question = await record(caller, session["id"], "tell me a long story")
    # As a process that died mid-answer leaves it: the row exists, with the text so far.
    answer_id = new_id()
    async with read_database(settings.database_url) as db:
        now = utcnow()
        db.add(
            Message(
                id=answer_id,
                session_id=uuid.UUID(session["id"]),
                role="assistant",
                content="Once upon a time",
                status="streaming",
                token_count=4,
                model="double-echo",
                created_at=now,
                updated_at=now,
            )
        )
        await db.commit()
    async with serve_chatgate(settings) as url, open_caller(url, "crasher") as caller:
        page = await caller.history(session["id"])
        assert [m["id"] for m in page["data"]] == [question, str(answer_id)]
        answer = page["data"][1]
        assert answer["status"] == "interrupted"
        assert answer["content"] == "Once upon a time"
        assert answer["error"]["code"] == "process_restarted"
        task = (await caller.http.get(f"/v1/tasks/{answer_id}")).json()
        assert task["status"] == "failed"
    async with read_database(settings.database_url) as db:
        left = (await db.scalars(select(Message).where(Message.status == "streaming"))).all()
    assert left == []
