"""chat.walk over a real database (SQLite and PostgreSQL) with batches far smaller than the data,
so every boundary is crossed: a session's messages split over batches, batches that hold several
sessions, sessions without messages between and after the others, and another user's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatgate.auth.service import User
from chatgate.chat.schemas import SessionOut
from chatgate.chat.walk import walk_conversations
from chatgate.core.db import Database
from tests.conftest import Caller, Gateway


@pytest.fixture
async def database(gateway: Gateway) -> AsyncIterator[Database]:
    database = Database(gateway.settings.database_url, pool_size=2)
    yield database
    await database.close()


async def record(caller: Caller, session_id: str, count: int) -> list[str]:
    ids = []
    for number in range(count):
        body = {"session_id": session_id, "role": "user", "content": f"message {number}"}
        response = await caller.http.post("/v1/history", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


@pytest.mark.parametrize(("sessions_per_batch", "messages_per_batch"), [(2, 3), (1, 1), (50, 50)])
async def test_every_session_and_message_once_in_order(
    alice: Caller, bob: Caller, database: Database, sessions_per_batch: int, messages_per_batch: int
) -> None:
    expected: list[tuple[str, list[str]]] = []
    for count in (0, 4, 1, 0, 7, 3, 0):
        session = await alice.new_session("echo")
        expected.append((session["id"], await record(alice, session["id"], count)))
    await record(bob, (await bob.new_session("echo"))["id"], 5)

    walked: list[tuple[str, list[str]]] = []
    async for item in walk_conversations(
        database, user=User(id=alice.user_id), sessions_per_batch=sessions_per_batch,
        messages_per_batch=messages_per_batch,
    ):  # fmt: skip
        if isinstance(item, SessionOut):
            walked.append((item.id, []))
        else:
            assert 0 < len(item) <= messages_per_batch
            assert {message["session_id"] for message in item} == {walked[-1][0]}
            walked[-1][1].extend(message["id"] for message in item)
    assert walked == expected
