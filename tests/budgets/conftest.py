"""One chatgate for the package, on a Redis of its own (a test may pause or kill it), with the
double as an engine and as an embedder; budgets set through the admin API as an operator would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatgate.core.config import EmbedderConfig
from tests.conftest import Double, make_token, remote_only_settings
from tests.faults.conftest import ControlledRedis
from tests.runner import run_chatgate


@dataclass
class BudgetGateway:
    url: str
    redis: ControlledRedis
    database_url: str


@pytest.fixture(scope="package")
def budget_redis() -> Iterator[ControlledRedis]:
    redis = ControlledRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="package")
def budget_gateway(
    database_url: str, openai_double: Double, budget_redis: ControlledRedis
) -> Iterator[BudgetGateway]:
    embedder = EmbedderConfig(
        id="remote", type="openai", base_url=f"{openai_double.url}/v1",
        api_key_env="DOUBLE_API_KEY", model="double-embed",
    )  # fmt: skip
    settings = remote_only_settings(
        database_url, openai_double.url, redis_url=budget_redis.url, embedders=[embedder]
    )
    with run_chatgate(settings) as url:
        yield BudgetGateway(url=url, redis=budget_redis, database_url=database_url)


def client(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
async def admin(budget_gateway: BudgetGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with client(
        budget_gateway.url, make_token(f"admin-{uuid.uuid4().hex[:8]}", admin=True)
    ) as http:
        yield http


def new_user() -> str:
    return f"budget-user-{uuid.uuid4().hex[:10]}"


async def set_budget(
    admin: httpx.AsyncClient, scope: str, subject: str, **spec: Any
) -> dict[str, Any]:
    response = await admin.put(
        f"/v1/admin/budgets/{scope}/{subject}", json={"period": "day", **spec}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_key(admin: httpx.AsyncClient, user_id: str) -> tuple[str, str]:
    """An API key of `user_id`: its id and its secret."""
    made = await admin.post(
        "/v1/admin/keys", json={"name": "budgets", "kind": "user", "user_id": user_id}
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["secret"]
