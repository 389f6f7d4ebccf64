"""One answer at a time per session, whichever chatgate process is asked: the database holds at
most one `streaming` answer per session (migration 0008), so a second process refuses a turn
while the first is writing one, and an answer left streaming by a dead process is ended once it
is stale instead of blocking its session for good."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from chatgate.chat.answers import STALE_AFTER
from chatgate.chat.models import ChatSession, Message
from chatgate.core.ids import new_id
from chatgate.core.migrate import upgrade_database
from chatgate.core.time import utcnow
from tests.conftest import (
    PG_ADMIN_URL,
    Caller,
    Gateway,
    _create_pg_database,
    _drop_pg_database,
    assert_error,
    open_caller,
    read_database,
    serve_chatgate,
)


async def test_a_second_process_refuses_a_turn_while_the_first_writes_one(
    gateway: Gateway, alice: Caller
) -> None:
    session = await alice.new_session("echo")
    messages = f"/v1/sessions/{session['id']}/messages"
    async with (
        serve_chatgate(gateway.settings) as second,
        open_caller(second, alice.user_id) as alice_on_second,
    ):
        async with alice.http.stream(
            "POST", messages, json={"content": "[[slow 20 0.05]]", "response_mode": "streaming"}
        ) as streaming:
            assert streaming.status_code == 200
            async for _ in streaming.aiter_lines():
                refused = await alice_on_second.http.post(messages, json={"content": "and now?"})
                assert_error(refused, 409, "turn_in_progress")
                break
        # The first answer is still being written after the client left: wait for its end.
        for _ in range(100):
            page = await alice.history(session["id"])
            if all(m["status"] != "streaming" for m in page["data"]):
                break
            await asyncio.sleep(0.05)
        contents = [m["content"] for m in page["data"] if m["role"] == "user"]
        assert contents == ["[[slow 20 0.05]]"]  # the refused message left nothing behind
        accepted = await alice_on_second.http.post(messages, json={"content": "now?"})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["message"]["content"] == "echo: now?"


async def test_two_processes_asked_at_once_start_one_turn(gateway: Gateway, alice: Caller) -> None:
    session = await alice.new_session("echo")
    messages = f"/v1/sessions/{session['id']}/messages"
    async with (
        serve_chatgate(gateway.settings) as second,
        open_caller(second, alice.user_id) as alice_on_second,
    ):
        answers = await asyncio.gather(
            alice.http.post(messages, json={"content": "[[slow 5 0.05]] first"}),
            alice_on_second.http.post(messages, json={"content": "[[slow 5 0.05]] second"}),
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert_error(refused, 409, "turn_in_progress")
    page = await alice.history(session["id"])
    assert [m["role"] for m in page["data"]] == ["user", "assistant"]
    assert page["data"][1]["status"] == "complete"


async def test_an_answer_a_dead_process_left_streaming_is_ended_when_stale(
    gateway: Gateway, alice: Caller
) -> None:
    session = await alice.new_session("echo")
    session_id = uuid.UUID(session["id"])
    left_at = utcnow() - STALE_AFTER - timedelta(minutes=1)
    orphan_id = new_id()
    await store(gateway, streaming_answer(orphan_id, session_id, left_at))
    answered = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "anyone there?"}
    )
    assert answered.status_code == 200, answered.text
    async with read_database(gateway.settings.database_url) as db:
        ended = await db.get(Message, orphan_id)
    assert ended is not None and ended.status == "interrupted"
    assert ended.content == "so far" and ended.error is not None
    assert ended.error["code"] == "process_restarted"


async def test_a_recent_streaming_answer_of_another_process_is_left_alone(
    gateway: Gateway, alice: Caller
) -> None:
    # Written by another process a moment ago: it may well be alive, so it is not ended.
    session = await alice.new_session("echo")
    other_id = new_id()
    await store(gateway, streaming_answer(other_id, uuid.UUID(session["id"]), utcnow()))
    refused = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "hello?"}
    )
    assert_error(refused, 409, "turn_in_progress")
    async with read_database(gateway.settings.database_url) as db:
        kept = await db.get(Message, other_id)
    assert kept is not None and kept.status == "streaming" and kept.content == "so far"


async def test_a_cached_answer_also_waits_for_the_answer_being_written(
    gateway: Gateway, alice: Caller
) -> None:
    question = f"Where is my parcel {secrets.token_hex(3)}?"
    cached = await alice.http.post("/v1/qa", json={"question": question, "assistant_id": "echo"})
    assert cached.status_code == 200 and cached.headers["x-cache"] == "miss"
    session = await alice.new_session("echo")
    await store(gateway, streaming_answer(new_id(), uuid.UUID(session["id"]), utcnow()))
    refused = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": question}
    )
    assert_error(refused, 409, "turn_in_progress")
    page = await alice.history(session["id"])
    assert [m["role"] for m in page["data"]] == ["assistant"]  # only the other process's row


def streaming_answer(id_: uuid.UUID, session_id: uuid.UUID, at: datetime) -> Message:
    """An answer row as a process writing it leaves it, last saved `at`."""
    return Message(
        id=id_, session_id=session_id, role="assistant", content="so far", status="streaming",
        token_count=1, created_at=at, updated_at=at,
    )  # fmt: skip


async def store(gateway: Gateway, message: Message) -> None:
    """Writes a row as another chatgate process would, straight into the shared database."""
    async with read_database(gateway.settings.database_url) as db:
        db.add(message)
        await db.commit()


@asynccontextmanager
async def fresh_database(kind: str, tmp_path_str: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_str}/migrate.db"
        return
    name = f"chatgate_migrate_{secrets.token_hex(4)}"
    await _create_pg_database(name)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        await _drop_pg_database(name)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_the_migration_keeps_the_newest_of_several_streaming_answers(
    kind: str, tmp_path: Path
) -> None:
    from alembic import command

    from chatgate.core.migrate import alembic_config

    async with fresh_database(kind, str(tmp_path)) as url:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0007")
        now = utcnow()
        session_id = new_id()
        session = ChatSession(
            id=session_id, user_id="u", assistant_id="echo", title="t", message_count=3,
            created_at=now, updated_at=now,
        )  # fmt: skip
        ids = [new_id() for _ in range(3)]
        rows = [streaming_answer(id_, session_id, now) for id_ in ids]
        engine = create_async_engine(url)
        try:
            async with AsyncSession(engine) as db:
                db.add(session)
                await db.flush()
                # Only the columns of revision 0007: the model has more since.
                columns = ("id", "session_id", "role", "content", "status", "token_count")
                values = [{c: getattr(r, c) for c in columns} for r in rows]
                await db.execute(
                    insert(Message), [{**v, "created_at": now, "updated_at": now} for v in values]
                )
                await db.commit()
            await asyncio.to_thread(upgrade_database, url)
            async with AsyncSession(engine) as db:
                found = await db.execute(
                    select(Message.id, Message.status).where(Message.session_id == session_id)
                )
                statuses = dict(found.all())
        finally:
            await engine.dispose()
    assert statuses == {
        ids[0]: "interrupted",
        ids[1]: "interrupted",
        ids[2]: "streaming",  # the newest (UUIDv7 ids grow with time)
    }
