"""DELETE /v1/me and DELETE /v1/admin/users/{user_id} over real HTTP, on SQLite and PostgreSQL:
nothing of the user left in the tables, the answer cache or Redis (queued tasks included),
other users untouched, audited without content, idempotent; with two chatgate processes on one
PostgreSQL and Redis, an answer the other process is writing for the user is stopped there and
writes nothing back."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.asyncio import Redis

from chatgate.cache.store import AnswerStore, MemoryAnswerStore, RedisAnswerStore
from tests.conftest import (
    Caller,
    Double,
    Gateway,
    assert_error,
    open_caller,
    remote_only_settings,
    serve_chatgate,
)
from tests.privacy.helpers import (
    REDIS_URL,
    admin_client,
    messages_in,
    redis_dump,
    rows_of,
    send,
)
from tests.runner import run_chatgate
from tests.tasks.test_worker import workers


def secret_text() -> str:
    return f"my account number is ZX-{secrets.token_hex(6)}"


async def first_answer(caller: Caller, question: str) -> dict[str, object]:
    session = await caller.new_session("echo")
    return await send(caller, session["id"], question)


async def test_erasing_me_removes_my_conversations_and_cached_answers(
    gateway: Gateway, alice: Caller, bob: Caller
) -> None:
    question = f"what are your opening hours {secrets.token_hex(4)}?"
    secret = secret_text()
    cached = await first_answer(alice, question)  # stored in the (in-process) answer cache
    assert cached["message"]["cached"] is False  # type: ignore[index]
    chat = await alice.new_session("support")
    await send(alice, chat["id"], secret)
    await send(alice, chat["id"], "and another thing")
    bobs = await bob.new_session("echo")
    await send(bob, bobs["id"], "bob keeps this")
    async with open_caller(gateway.url) as carol:
        again = await first_answer(carol, question)
        assert again["message"]["cached"] is True  # type: ignore[index]
    alice_sessions = [cached["message"]["session_id"], chat["id"]]  # type: ignore[index]

    response = await alice.http.delete("/v1/me")

    assert response.status_code == 204, response.text
    assert await rows_of(gateway.settings.database_url, alice.user_id) == (0, 0)
    assert await messages_in(gateway.settings.database_url, alice_sessions) == 0
    assert (await alice.http.get("/v1/sessions")).json()["data"] == []
    assert await rows_of(gateway.settings.database_url, bob.user_id) == (1, 2)
    async with open_caller(gateway.url) as dave:
        fresh = await first_answer(dave, question)
    assert fresh["message"]["cached"] is False  # type: ignore[index]
    async with admin_client(gateway.url) as admin:
        events = await admin.get(
            "/v1/admin/audit", params={"action": "user.erased", "user_id": alice.user_id}
        )
    (event,) = events.json()["data"]
    assert event["target_id"] == alice.user_id
    assert event["details"]["removed"] == {
        "sessions": 2, "messages": 6, "tasks": 0, "cached_answers": 2, "data_keys": 1,
    }  # fmt: skip
    assert secret not in json.dumps(event) and question not in json.dumps(event)


async def test_erasing_is_idempotent(gateway: Gateway, alice: Caller) -> None:
    assert (await alice.http.delete("/v1/me")).status_code == 204  # a user with nothing
    session = await alice.new_session("echo")
    await send(alice, session["id"], "hello")
    assert (await alice.http.delete("/v1/me")).status_code == 204
    assert (await alice.http.delete("/v1/me")).status_code == 204
    assert await rows_of(gateway.settings.database_url, alice.user_id) == (0, 0)
    # Erasing is not closing an account: a new conversation may start.
    await alice.new_session("echo")
    assert await rows_of(gateway.settings.database_url, alice.user_id) == (1, 0)


async def test_admins_erase_any_user_and_only_admins(
    gateway: Gateway, alice: Caller, bob: Caller
) -> None:
    session = await bob.new_session("echo")
    await send(bob, session["id"], secret_text())
    refused = await alice.http.delete(f"/v1/admin/users/{bob.user_id}")
    assert_error(refused, 403, "admin_required")
    assert await rows_of(gateway.settings.database_url, bob.user_id) == (1, 2)
    admin_id = f"admin-{uuid.uuid4().hex[:8]}"
    async with admin_client(gateway.url, admin_id) as admin:
        assert (await admin.delete(f"/v1/admin/users/{bob.user_id}")).status_code == 204
        events = await admin.get(
            "/v1/admin/audit", params={"action": "user.erased", "user_id": admin_id}
        )
    assert await rows_of(gateway.settings.database_url, bob.user_id) == (0, 0)
    (event,) = events.json()["data"]
    assert (event["user_id"], event["target_type"], event["target_id"]) == (
        admin_id, "user", bob.user_id,
    )  # fmt: skip
    assert event["details"]["removed"]["sessions"] == 1


@pytest.fixture(scope="module")
def redis_gateway(database_url: str, openai_double: Double) -> Iterator[Gateway]:
    """Answer cache and task queue in Redis; no worker runs, so async answers stay queued."""
    settings = remote_only_settings(
        database_url, openai_double.url, redis_url=REDIS_URL,
        task_queue=f"chatgate:test-erasure:{secrets.token_hex(4)}",
    )  # fmt: skip
    with run_chatgate(settings) as url:
        yield Gateway(url=url, settings=settings, double=openai_double)


async def test_nothing_of_the_user_stays_in_redis(redis_gateway: Gateway) -> None:
    question = f"which payment methods do you take {secrets.token_hex(4)}?"
    secret = secret_text()
    async with open_caller(redis_gateway.url) as erin, open_caller(redis_gateway.url) as frank:
        await first_answer(erin, question)
        session = await erin.new_session("support")
        await send(erin, session["id"], "hello")
        queued = await send(erin, session["id"], secret, mode="async")
        job_key = job_key_prefix + str(queued["task_id"])
        redis = Redis.from_url(REDIS_URL)
        try:
            assert await redis.exists(job_key)
            before = await redis_dump()

            assert (await erin.http.delete("/v1/me")).status_code == 204

            assert not await redis.exists(job_key)
        finally:
            await redis.aclose()
        after = await redis_dump()
        for key, value in after.items():
            assert secret.encode() not in value and question.encode() not in value, key
        # Rate-limit windows name users and expire within two minutes; nothing else does.
        named = [k for k in after if erin.user_id in k and not k.startswith("chatgate:limits:")]
        assert not named, "no key names the user"
        gone = set(before) - set(after)
        assert any(key.startswith("chatgate:answers:") for key in gone)
        assert await rows_of(redis_gateway.settings.database_url, erin.user_id) == (0, 0)
        again = await first_answer(frank, question)
        assert again["message"]["cached"] is False  # type: ignore[index]
        async with admin_client(redis_gateway.url) as admin:
            events = await admin.get(
                "/v1/admin/audit", params={"action": "user.erased", "user_id": erin.user_id}
            )
        removed = events.json()["data"][0]["details"]["removed"]
        assert removed == {
            "sessions": 2, "messages": 6, "tasks": 1, "cached_answers": 2, "data_keys": 1,
        }  # fmt: skip


@pytest.fixture
async def two_processes(database_url: str, openai_double: Double) -> AsyncIterator[tuple[str, str]]:
    settings = remote_only_settings(database_url, openai_double.url, redis_url=REDIS_URL)
    async with serve_chatgate(settings) as first, serve_chatgate(settings) as second:
        yield first, second


# Several chatgate processes share PostgreSQL, not the embedded SQLite (one process).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_an_answer_another_process_writes_is_stopped_and_writes_nothing_back(
    two_processes: tuple[str, str], database_url: str
) -> None:
    here, there = two_processes
    async with open_caller(there) as grace, open_caller(here, grace.user_id) as grace_here:
        session = await grace.new_session("echo")
        body = {"content": f"[[slow 400 0.02]] {secret_text()}", "response_mode": "streaming"}
        path = f"/v1/sessions/{session['id']}/messages"
        async with grace.http.stream("POST", path, json=body) as stream:
            raw = ""
            erased = False
            async with asyncio.timeout(15):  # uncut, the answer would take 8 s
                async for chunk in stream.aiter_text():
                    raw += chunk
                    if raw.count("event: delta") >= 3 and not erased:
                        assert (await grace_here.http.delete("/v1/me")).status_code == 204
                        erased = True
        assert erased
        assert "event: message_end" in raw or "event: error" in raw
        assert raw.count("event: delta") < 400
    await asyncio.sleep(0.5)  # past the answer's flush interval: nothing comes back
    assert await rows_of(database_url, grace.user_id) == (0, 0)
    assert await messages_in(database_url, [session["id"]]) == 0


async def test_an_answer_a_worker_writes_leaves_no_job_or_result_behind(
    database_url: str, openai_double: Double, tmp_path: Path
) -> None:
    settings = remote_only_settings(
        database_url, openai_double.url, redis_url=REDIS_URL,
        task_queue=f"chatgate:test-erasure:{secrets.token_hex(4)}",
    )  # fmt: skip
    redis = Redis.from_url(REDIS_URL)
    # The gateway first: it migrates the database the worker opens.
    async with serve_chatgate(settings) as url, open_caller(url) as kim:
        with workers(settings, tmp_path):
            session = await kim.new_session("echo")
            content = f"[[slow 100 0.05]] {secret_text()}"
            task_id = str((await send(kim, session["id"], content, mode="async"))["task_id"])
            prefixes = (in_progress_key_prefix, job_key_prefix, result_key_prefix)
            keys = [prefix + task_id for prefix in prefixes]
            for _ in range(200):
                if await redis.exists(in_progress_key_prefix + task_id):
                    break  # a worker writes it
                await asyncio.sleep(0.05)

            assert (await kim.http.delete("/v1/me")).status_code == 204

            for _ in range(200):  # the worker is asked to stop, and ends the job
                if not await redis.exists(*keys):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            assert not await redis.exists(*keys)
            assert await rows_of(database_url, kim.user_id) == (0, 0)
    await redis.aclose()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_owner_index_drops_that_owners_entries_only(backend: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    store: AnswerStore = (
        MemoryAnswerStore(ttl_seconds=60, max_entries=10)
        if backend == "memory"
        else RedisAnswerStore(redis, ttl_seconds=60)
    )
    key = f"chatgate:test-erasure:{secrets.token_hex(4)}"
    await store.put(f"{key}:a", "for alice", index=f"{key}:owner:alice")
    await store.put(f"{key}:b", "for bob", index=f"{key}:owner:bob")
    await store.put(f"{key}:a", "not stored: the entry is there", index=f"{key}:owner:carol")

    assert await store.drop_indexed(f"{key}:owner:alice") == 1

    assert await store.get(f"{key}:a") is None
    assert await store.get(f"{key}:b") == "for bob"
    assert await store.drop_indexed(f"{key}:owner:alice") == 0
    assert await store.drop_indexed(f"{key}:owner:carol") == 0  # listed, already gone
    assert await store.drop_indexed(f"{key}:owner:bob") == 1
    await redis.aclose()
