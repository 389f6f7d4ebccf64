"""Redis hung (paused) or gone (killed) under a running chatgate: every request still answers
within a bound, degrading as it does for a refused connection; every stream ends with an end
or error event; no session stays locked; what was stored stays; and chatgate recovers when
Redis comes back. Revisions, rate limits, breakers and the answer cache all read Redis here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Caller,
    Double,
    make_token,
    open_caller,
    parse_sse,
    remote_only_settings,
)
from tests.faults.conftest import ControlledRedis
from tests.runner import run_chatgate

# Each request must answer within this, Redis hung or not (every Redis call gives up after about
# half a second, and a revision or breaker that failed is not asked again for a few seconds).
BOUND = 3.0


@dataclass
class RedisGateway:
    url: str
    key: str  # an API key's secret, used once while Redis was up (so it is cached)


@pytest.fixture(scope="module")
def redis_gateway(
    database_url: str, openai_double: Double, faulty_redis: ControlledRedis
) -> Iterator[RedisGateway]:
    settings = remote_only_settings(database_url, openai_double.url, redis_url=faulty_redis.url)
    with run_chatgate(settings) as url:
        admin = {"Authorization": f"Bearer {make_token('fault-admin', admin=True)}"}
        spec = {"name": "faults", "kind": "user", "user_id": "fault-key-user"}
        made = httpx.post(f"{url}/v1/admin/keys", headers=admin, json=spec)
        assert made.status_code == 201, made.text
        yield RedisGateway(url=url, key=made.json()["secret"])


@pytest.fixture
async def caller(redis_gateway: RedisGateway) -> AsyncIterator[Caller]:
    async with open_caller(redis_gateway.url) as caller:
        yield caller


async def timed(request: Any) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = await request
    return time.monotonic() - started, response


async def ask(caller: Caller, session_id: str, content: str) -> tuple[float, httpx.Response]:
    return await timed(
        caller.http.post(
            f"/v1/sessions/{session_id}/messages",
            json={"content": content, "response_mode": "streaming"},
        )
    )


async def assert_all_answer(gateway: RedisGateway, caller: Caller, *, redis_up: bool) -> None:
    """What every fault must leave true: each request within BOUND, with its normal answer."""
    elapsed, listed = await timed(caller.http.get("/v1/assistants"))
    assert listed.status_code == 200 and elapsed < BOUND, (listed.status_code, elapsed)
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30
    ) as with_key:
        elapsed, as_key = await timed(with_key.get("/v1/assistants"))
    assert as_key.status_code == 200 and elapsed < BOUND, (as_key.status_code, elapsed)

    session = await caller.new_session("echo")
    for content in ("first while faulty", "second while faulty"):
        elapsed, response = await ask(caller, session["id"], content)
        # The second message is not refused with 409: the first left no session locked.
        assert response.status_code == 200, response.text
        assert elapsed < BOUND, elapsed
        events = parse_sse(response.text)
        assert events[-1]["event"] in ("message_end", "error"), events[-1]
        assert events[-1]["event"] == "message_end"  # the engine is up: only Redis is not
    history = await caller.history(session["id"])
    stored = [(m["role"], m["status"]) for m in history["data"]]
    assert stored == [("user", "complete"), ("assistant", "complete")] * 2, stored

    elapsed, ready = await timed(caller.http.get("/ready"))
    assert elapsed < BOUND, elapsed
    if redis_up:
        assert ready.status_code == 200, ready.text
    else:
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["redis"].startswith("failed"), ready.text
        assert ready.json()["checks"]["database"] == "ok"


async def wait_ready(caller: Caller) -> None:
    deadline = time.monotonic() + 15
    while (await caller.http.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, "chatgate did not see Redis come back"
        await asyncio.sleep(0.2)


async def test_a_paused_redis_holds_no_request(
    redis_gateway: RedisGateway, caller: Caller, faulty_redis: ControlledRedis
) -> None:
    await assert_all_answer(redis_gateway, caller, redis_up=True)
    faulty_redis.pause()
    try:
        await assert_all_answer(redis_gateway, caller, redis_up=False)
    finally:
        faulty_redis.resume()
    await wait_ready(caller)
    await assert_all_answer(redis_gateway, caller, redis_up=True)


async def test_a_killed_redis_holds_no_request_and_is_found_again(
    redis_gateway: RedisGateway, caller: Caller, faulty_redis: ControlledRedis
) -> None:
    faulty_redis.kill()
    try:
        await assert_all_answer(redis_gateway, caller, redis_up=False)
    finally:
        faulty_redis.start()
    await wait_ready(caller)
    await assert_all_answer(redis_gateway, caller, redis_up=True)


async def test_an_admin_change_is_saved_while_redis_is_down_and_announced_after(
    redis_gateway: RedisGateway, faulty_redis: ControlledRedis
) -> None:
    admin = {"Authorization": f"Bearer {make_token('fault-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=redis_gateway.url, headers=admin, timeout=10) as http:
        faulty_redis.kill()
        try:
            elapsed, edited = await timed(
                http.patch("/v1/admin/assistants/echo", json={"description": "edited, Redis down"})
            )
            # Saved, so not refused: the other processes are told once Redis answers again.
            assert edited.status_code == 200, edited.text
            assert elapsed < BOUND
        finally:
            faulty_redis.start()
        await asyncio.sleep(2.5)  # past the outage's back-off
        listed = (await http.get("/v1/assistants")).json()["data"]
        assert {a["id"]: a["description"] for a in listed}["echo"] == "edited, Redis down"
