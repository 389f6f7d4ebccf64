"""The retention job over real HTTP, on SQLite and PostgreSQL: conversations idle past their
period (the global one, or their assistant's own, set through the admin API) are erased, recent
ones and one with an answer streaming are kept; it runs on its schedule; with two chatgate
processes on one PostgreSQL (a Redis lock, or PostgreSQL's advisory lock without Redis) a run
holds the deployment's lock and each conversation is erased once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import exists, select, update

from chatgate.chat.models import ChatSession, Message
from chatgate.core.time import utcnow
from tests.conftest import (
    Caller,
    Double,
    Gateway,
    open_caller,
    read_database,
    remote_only_settings,
    serve_chatgate,
)
from tests.privacy.helpers import REDIS_URL, admin_client, send
from tests.runner import run_chatgate

ERASED = "chatgate_retention_erased_conversations_total"


def erased_so_far() -> float:
    return REGISTRY.get_sample_value(ERASED) or 0.0


def retention_settings(database_url: str, double_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {"retention_days": 30, "retention_every_minutes": 600, **overrides}
    return remote_only_settings(database_url, double_url, **values)


@pytest.fixture(scope="module")
def kept_30_days(database_url: str, openai_double: Double) -> Iterator[Gateway]:
    """Conversations kept 30 days; runs only when an admin asks, in these tests."""
    settings = retention_settings(database_url, openai_double.url)
    with run_chatgate(settings) as url:
        yield Gateway(url=url, settings=settings, double=openai_double)


@pytest.fixture
async def henry(kept_30_days: Gateway) -> AsyncIterator[Caller]:
    async with open_caller(kept_30_days.url) as caller:
        yield caller


async def conversation(caller: Caller, assistant_id: str, idle_days: float, url: str) -> str:
    """A conversation with one turn, whose last activity was `idle_days` ago."""
    session = await caller.new_session(assistant_id)
    await send(caller, session["id"], "hello there")
    await set_last_activity(url, [session["id"]], idle_days)
    return str(session["id"])


async def set_last_activity(database_url: str, session_ids: list[str], idle_days: float) -> None:
    ids = [uuid.UUID(i) for i in session_ids]
    async with read_database(database_url) as db:
        await db.execute(
            update(ChatSession)
            .where(ChatSession.id.in_(ids))
            .values(updated_at=utcnow() - timedelta(days=idle_days))
        )
        await db.commit()


async def kept(database_url: str, session_ids: list[str]) -> set[str]:
    """Which of these sessions are still there, each with its messages. One statement, so one
    snapshot: two would straddle a run's commit while the job runs."""
    ids = [uuid.UUID(i) for i in session_ids]
    holds_messages = exists().where(Message.session_id == ChatSession.id)
    async with read_database(database_url) as db:
        rows = (
            await db.execute(select(ChatSession.id, holds_messages).where(ChatSession.id.in_(ids)))
        ).all()
        orphans = (
            await db.scalars(
                select(Message.session_id)
                .where(Message.session_id.in_(ids))
                .where(~exists().where(ChatSession.id == Message.session_id))
            )
        ).all()
    assert all(has for _, has in rows), "a session went without its messages"
    assert not orphans, "messages outlived their session"
    return {str(i) for i, _ in rows}


async def run_now(url: str) -> tuple[int, dict[str, int]]:
    async with admin_client(url) as admin:
        response = await admin.post("/v1/admin/retention/run")
    assert response.status_code in (200, 409), response.text
    return response.status_code, response.json().get("removed", {})


async def test_old_conversations_go_recent_ones_stay_an_assistants_own_period_wins(
    kept_30_days: Gateway, henry: Caller
) -> None:
    url, database_url = kept_30_days.url, kept_30_days.settings.database_url
    old = await conversation(henry, "echo", 31, database_url)
    recent = await conversation(henry, "echo", 29, database_url)
    new = await conversation(henry, "echo", 0, database_url)
    support_old = await conversation(henry, "support", 4, database_url)
    support_recent = await conversation(henry, "support", 2, database_url)
    async with admin_client(url) as admin:
        changed = await admin.patch("/v1/admin/assistants/support", json={"retention_days": 3})
        assert changed.status_code == 200, changed.text
        assert changed.json()["retention_days"] == 3
        try:
            before = erased_so_far()
            status, removed = await run_now(url)
        finally:
            await admin.patch("/v1/admin/assistants/support", json={"retention_days": None})
        events = await admin.get("/v1/admin/audit", params={"action": "conversations.expired"})

    assert status == 200
    assert await kept(database_url, [old, recent, new, support_old, support_recent]) == {
        recent, new, support_recent,
    }  # fmt: skip
    assert removed["sessions"] >= 2 and removed["messages"] >= 4
    assert erased_so_far() - before == removed["sessions"]
    latest = events.json()["data"][0]
    assert latest["details"]["removed"] == removed
    assert "hello" not in str(latest)


async def test_a_conversation_with_an_answer_streaming_is_never_erased(
    kept_30_days: Gateway, henry: Caller
) -> None:
    database_url = kept_30_days.settings.database_url
    busy = await conversation(henry, "echo", 45, database_url)
    async with read_database(database_url) as db:
        answer = Message.session_id == uuid.UUID(busy)
        await db.execute(
            update(Message).where(answer, Message.role == "assistant").values(status="streaming")
        )
        await db.commit()
    assert (await run_now(kept_30_days.url))[0] == 200
    assert await kept(database_url, [busy]) == {busy}
    async with read_database(database_url) as db:
        await db.execute(update(Message).where(answer).values(status="complete"))
        await db.commit()
    assert (await run_now(kept_30_days.url))[0] == 200
    assert await kept(database_url, [busy]) == set()


async def test_the_job_runs_on_its_schedule(database_url: str, openai_double: Double) -> None:
    settings = retention_settings(database_url, openai_double.url, retention_every_minutes=0.01)
    async with serve_chatgate(settings) as url, open_caller(url) as ivy:
        old = await conversation(ivy, "echo", 60, database_url)
        recent = await conversation(ivy, "echo", 1, database_url)
        for _ in range(100):  # runs every 0.6 s
            if not await kept(database_url, [old]):
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the scheduled run did not erase the old conversation")
        assert await kept(database_url, [recent]) == {recent}


@pytest.fixture(params=["redis", "advisory"])
async def two_processes(
    request: pytest.FixtureRequest, database_url: str, openai_double: Double
) -> AsyncIterator[tuple[str, str]]:
    """Two chatgate processes on one PostgreSQL: with Redis (its lock) or without (PostgreSQL's
    advisory lock); a conversation per transaction, so a run lasts."""
    redis_url = REDIS_URL if request.param == "redis" else None
    settings = retention_settings(
        database_url, openai_double.url, redis_url=redis_url, retention_batch=1
    )
    async with serve_chatgate(settings) as first, serve_chatgate(settings) as second:
        yield first, second


# Several chatgate processes share PostgreSQL, not the embedded SQLite (one process).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_processes_erase_each_conversation_once(
    two_processes: tuple[str, str], database_url: str
) -> None:
    first, second = two_processes
    async with open_caller(first) as jack:
        sessions = [str((await jack.new_session("echo"))["id"]) for _ in range(40)]
    await set_last_activity(database_url, sessions, 90)

    runs = await asyncio.gather(run_now(first), run_now(second), run_now(first), run_now(second))

    assert await kept(database_url, sessions) == set()
    erased = [removed.get("sessions", 0) for status, removed in runs if status == 200]
    assert sum(erased) == 40, runs  # none twice
    assert 409 in [status for status, _ in runs], "a run meanwhile found the lock held"
