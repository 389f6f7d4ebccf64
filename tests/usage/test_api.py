"""`GET /v1/admin/usage` and `/v1/admin/prices` on a running chatgate, on SQLite and PostgreSQL:
groupings, the time range (since inclusive, until exclusive, dates or zoned times), filters,
admins only, bad input refused with a code, prices seeded from the YAML and changed live."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.core.config import PriceConfig
from chatgate.core.db import Database
from chatgate.usage.models import UsageRecord
from chatgate.usage.prices import Prices
from tests.conftest import Double, assert_error, make_token, remote_only_settings
from tests.runner import run_chatgate

# A model of this run's own: the database is shared with other modules, which set prices too.
SEEDED_MODEL = f"seeded/model-{secrets.token_hex(3)}"
SEEDED = {SEEDED_MODEL: PriceConfig(input_per_million=1.5, output_per_million=6.0)}


@pytest.fixture(scope="module")
def served(database_url: str, openai_double: Double) -> Iterator[tuple[str, str]]:
    settings = remote_only_settings(database_url, openai_double.url, prices=SEEDED)
    with run_chatgate(settings) as url:
        yield url, database_url


@pytest.fixture
async def admin(served: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('usage-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=served[0], headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
async def someone(served: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('not-an-admin')}"}
    async with httpx.AsyncClient(base_url=served[0], headers=headers, timeout=30) as client:
        yield client


def row(at: str, user: str, marker: str, **fields: Any) -> dict[str, Any]:
    created = datetime.fromisoformat(at)
    return {
        "id": uuid.uuid4(), "created_at": created, "day": created.astimezone(UTC).date(),
        "user_id": user, "key_id": None, "assistant_id": marker, "route": "chat",
        "engine": "e", "model": "m1", "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0,
        "cached": False, "fallback": False, **fields,
    }  # fmt: skip


async def usage(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/admin/usage", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_usage_is_summed_by_each_grouping_over_a_time_range(
    served: tuple[str, str], admin: httpx.AsyncClient
) -> None:
    marker = f"report-{secrets.token_hex(4)}"
    rows = [
        row("2026-03-01T10:00:00+00:00", "ann", marker, key_id="k1", prompt_tokens=100,
            completion_tokens=50, cost=1.0),
        row("2026-03-01T23:30:00+00:00", "bob", marker, model="m2", prompt_tokens=10,
            completion_tokens=5, cost=0.5),
        row("2026-03-02T00:30:00+00:00", "ann", marker, key_id="k1", prompt_tokens=1,
            completion_tokens=1, cost=2.0),
        row("2026-03-03T12:00:00+00:00", "bob", marker, engine=None, prompt_tokens=7,
            completion_tokens=3, cached=True),
    ]  # fmt: skip
    engine = create_async_engine(served[1])
    async with engine.begin() as conn:
        await conn.execute(insert(UsageRecord), rows)
    await engine.dispose()

    by_user = await usage(admin, group_by="user", assistant_id=marker)
    assert by_user == [
        {"group": "ann", "requests": 2, "prompt_tokens": 101, "completion_tokens": 51,
         "cost": 3.0, "cached_requests": 0},
        {"group": "bob", "requests": 2, "prompt_tokens": 17, "completion_tokens": 8,
         "cost": 0.5, "cached_requests": 1},
    ]  # fmt: skip
    by_key = await usage(admin, group_by="key", assistant_id=marker)
    assert [(g["group"], g["requests"]) for g in by_key] == [("k1", 2), (None, 2)]
    by_model = await usage(admin, group_by="model", assistant_id=marker)
    assert [(g["group"], g["cost"]) for g in by_model] == [("m1", 3.0), ("m2", 0.5)]
    by_assistant = await usage(admin, group_by="assistant", assistant_id=marker)
    assert [(g["group"], g["requests"]) for g in by_assistant] == [(marker, 4)]
    by_day = await usage(admin, group_by="day", assistant_id=marker)
    assert [(g["group"], g["requests"]) for g in by_day] == [
        ("2026-03-01", 2), ("2026-03-02", 1), ("2026-03-03", 1)
    ]  # fmt: skip

    async def days(**params: str) -> list[str]:
        groups = await usage(admin, group_by="day", assistant_id=marker, **params)
        return [g["group"] for g in groups]

    assert await days(since="2026-03-02") == ["2026-03-02", "2026-03-03"]
    assert await days(until="2026-03-02") == ["2026-03-01"]  # until is exclusive
    assert await days(since="2026-03-02", until="2026-03-03") == ["2026-03-02"]
    # Times with their zone: 08:00 in Shanghai is midnight UTC.
    assert await days(since="2026-03-02T08:00:00+08:00") == ["2026-03-02", "2026-03-03"]
    assert await days(since="2026-03-01T23:00:00Z", until="2026-03-02T00:00:00+00:00") == [
        "2026-03-01"
    ]
    only_ann = await usage(admin, group_by="model", assistant_id=marker, user_id="ann")
    assert [(g["group"], g["requests"]) for g in only_ann] == [("m1", 2)]
    only_k1 = await usage(admin, group_by="user", assistant_id=marker, key_id="k1")
    assert [(g["group"], g["requests"]) for g in only_k1] == [("ann", 2)]


async def test_usage_refuses_bad_input_and_non_admins(
    admin: httpx.AsyncClient, someone: httpx.AsyncClient
) -> None:
    for since in ("yesterday", "2026-03-01T10:00:00", "2026-13-01"):
        response = await admin.get("/v1/admin/usage", params={"since": since})
        assert_error(response, 422, "invalid_time")
    response = await admin.get("/v1/admin/usage", params={"until": "03/01/2026"})
    assert_error(response, 422, "invalid_time")
    response = await admin.get("/v1/admin/usage", params={"group_by": "planet"})
    assert_error(response, 422, "validation_error")
    response = await admin.get("/v1/admin/usage", params={"user_id": "nul\x00inside"})
    assert_error(response, 422, "validation_error")
    body = {"input_per_million": 1, "output_per_million": 1}
    response = await admin.put("/v1/admin/prices/nul%00inside", json=body)
    assert_error(response, 422, "validation_error")
    assert_error(await someone.get("/v1/admin/usage"), 403, "admin_required")


async def test_prices_are_seeded_then_changed_by_admins_only(
    served: tuple[str, str], admin: httpx.AsyncClient, someone: httpx.AsyncClient
) -> None:
    listed = (await admin.get("/v1/admin/prices")).json()["data"]
    assert {"model": SEEDED_MODEL, "input_per_million": 1.5, "output_per_million": 6.0} in listed
    model = f"org/model-{secrets.token_hex(3)}"  # names may hold a slash
    put = await admin.put(
        f"/v1/admin/prices/{model}", json={"input_per_million": 0.15, "output_per_million": 0.6}
    )
    assert put.status_code == 200, put.text
    assert put.json() == {"model": model, "input_per_million": 0.15, "output_per_million": 0.6}
    assert put.json() in (await admin.get("/v1/admin/prices")).json()["data"]
    for bad in (
        {"input_per_million": -1, "output_per_million": 1},
        {"input_per_million": 1},
        {"input_per_million": "cheap", "output_per_million": 1},
    ):
        response = await admin.put(f"/v1/admin/prices/{model}", json=bad)
        assert_error(response, 422, "validation_error")
    response = await admin.put(
        f"/v1/admin/prices/{'x' * 201}", json={"input_per_million": 1, "output_per_million": 1}
    )
    assert_error(response, 422, "validation_error")
    assert_error(await someone.get("/v1/admin/prices"), 403, "admin_required")
    body = {"input_per_million": 0, "output_per_million": 0}
    assert_error(await someone.put(f"/v1/admin/prices/{model}", json=body), 403, "admin_required")
    assert_error(await someone.delete(f"/v1/admin/prices/{model}"), 403, "admin_required")
    assert (await admin.delete(f"/v1/admin/prices/{model}")).status_code == 204
    assert_error(await admin.delete(f"/v1/admin/prices/{model}"), 404, "price_not_found")
    assert model not in {p["model"] for p in (await admin.get("/v1/admin/prices")).json()["data"]}

    # The YAML seeds again at every start, and never over an admin's price.
    changed = {"input_per_million": 3.0, "output_per_million": 12.0}
    assert (await admin.put(f"/v1/admin/prices/{SEEDED_MODEL}", json=changed)).status_code == 200
    database = Database(served[1])
    try:
        await Prices(database=database, redis=None).seed(SEEDED)
    finally:
        await database.close()
    listed = (await admin.get("/v1/admin/prices")).json()["data"]
    assert {"model": SEEDED_MODEL, **changed} in listed


async def test_a_call_is_costed_at_the_price_an_admin_set(
    served: tuple[str, str], admin: httpx.AsyncClient
) -> None:
    price = {"input_per_million": 2000.0, "output_per_million": 8000.0}
    assert (await admin.put("/v1/admin/prices/double-echo", json=price)).status_code == 200
    user = f"payer-{secrets.token_hex(4)}"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    async with httpx.AsyncClient(base_url=served[0], headers=headers, timeout=30) as caller:
        answer = await caller.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "three small words"}]},
        )
        assert answer.status_code == 200, answer.text
    reported = answer.json()["usage"]
    deadline = time.monotonic() + 10
    while not (groups := await usage(admin, group_by="user", user_id=user)):
        assert time.monotonic() < deadline, "the call never reached the ledger"
        await asyncio.sleep(0.2)
    (group,) = groups
    assert group["prompt_tokens"] == reported["prompt_tokens"]
    assert group["completion_tokens"] == reported["completion_tokens"]
    expected = (reported["prompt_tokens"] * 2000 + reported["completion_tokens"] * 8000) / 1e6
    assert group["cost"] == pytest.approx(expected) and expected > 0
    metrics = (await admin.get("/metrics")).text
    assert 'chatgate_cost_total{engine="double",model="double-echo"}' in metrics


async def test_an_erased_user_leaves_usage_under_a_pseudonym(
    served: tuple[str, str], admin: httpx.AsyncClient
) -> None:
    user = f"leaving-{secrets.token_hex(4)}"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    async with httpx.AsyncClient(base_url=served[0], headers=headers, timeout=30) as caller:
        for words in ("first question", "second question"):
            body = {"model": "echo", "messages": [{"role": "user", "content": words}]}
            assert (await caller.post("/v1/chat/completions", json=body)).status_code == 200
    before = await usage(admin, group_by="user")
    erased_before = next((g for g in before if g["group"] == "erased"), None)
    mine = [g for g in before if g["group"] == user]  # written, or still waiting to be
    response = await admin.delete(f"/v1/admin/users/{user}")
    assert response.status_code == 204, response.text
    await asyncio.sleep(1.5)  # past the ledger's next write: nothing of theirs comes back
    after = await usage(admin, group_by="user")
    assert user not in {g["group"] for g in after}
    erased = next(g for g in after if g["group"] == "erased")
    gained = erased["requests"] - (erased_before["requests"] if erased_before else 0)
    assert gained == 2, (mine, erased)


async def test_a_price_changed_in_one_process_costs_the_next_call_in_another(
    database_url: str, openai_double: Double
) -> None:
    settings = remote_only_settings(
        database_url, openai_double.url, redis_url="redis://127.0.0.1:6379/0"
    )
    admin_headers = {"Authorization": f"Bearer {make_token('price-admin', admin=True)}"}
    with run_chatgate(settings) as first, run_chatgate(settings) as second:
        async with httpx.AsyncClient(base_url=first, headers=admin_headers, timeout=30) as admin:

            async def ask_second(user: str) -> dict[str, int]:
                headers = {"Authorization": f"Bearer {make_token(user)}"}
                async with httpx.AsyncClient(base_url=second, headers=headers) as caller:
                    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
                    answer = await caller.post("/v1/chat/completions", json=body)
                    assert answer.status_code == 200, answer.text
                    usage: dict[str, int] = answer.json()["usage"]
                    return usage

            costs = {}
            for price in (10.0, 1000.0):
                body = {"input_per_million": price, "output_per_million": price}
                put = await admin.put("/v1/admin/prices/double-tiny", json=body)
                assert put.status_code == 200, put.text
                await asyncio.sleep(1.5)  # the other process's writer checks each second
                user = f"priced-{secrets.token_hex(4)}"
                used = await ask_second(user)
                costs[user] = (used["prompt_tokens"] + used["completion_tokens"]) * price / 1e6
            deadline = time.monotonic() + 10
            while True:
                groups = {g["group"]: g["cost"] for g in await usage(admin, group_by="user")}
                if all(user in groups for user in costs):
                    break
                assert time.monotonic() < deadline, "the calls never reached the ledger"
                await asyncio.sleep(0.2)
    for user, expected in costs.items():
        assert groups[user] == pytest.approx(expected) and expected > 0
