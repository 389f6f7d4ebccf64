"""Budgets across processes: two `chatgate serve` replicas and a `chatgate worker` on one
PostgreSQL database and one Redis (tests/replicas/topology.py). A key over its budget is refused
by both replicas; a change made through one is seen by the other at once; an answer the worker
writes settles its reservation. And the issue's done-when: 100 concurrent requests over real
HTTP against a nearly spent budget overspend it by no more than the documented bound."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import JWT_AUDIENCE, JWT_SECRET, TEST_ENCRYPTION_KEYS, make_token
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app
from tests.replicas.topology import (
    CHATGATE,
    START_WITHIN,
    Replica,
    chatgate_environment,
    private_redis,
    scratch_database,
    serve_process,
    stop_all,
)

MAX_ANSWER = 50  # the assistant's max_answer_tokens: the bound's unit
ANSWER = 40  # words the double streams for "[[slow 40 0.01]]", each a completion token


@dataclass
class Budgeted:
    replicas: list[Replica]
    engine: OpenAIDouble

    @property
    def urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]


def config(engine_url: str) -> dict[str, Any]:
    provider = {
        "id": "engine", "type": "openai", "base_url": f"{engine_url}/v1",
        "api_key_env": "DOUBLE_API_KEY", "retries": {"attempts": 0},
        "timeouts": {"connect": 2, "first_token": 10, "between_tokens": 10, "total": 120},
    }  # fmt: skip
    assistant = {
        "id": "echo", "name": "echo", "provider": "engine", "model": "double-model",
        "system_prompt": "Echo the user.", "max_context_tokens": 4000,
        "max_answer_tokens": MAX_ANSWER, "guards": {"pii": "off", "injection": "off"},
        "cache_answers": False,
    }  # fmt: skip
    limits = {"requests_per_minute": 100_000, "ip_requests_per_minute": 1_000_000,
              "tokens_per_minute": 10_000_000}  # fmt: skip
    return {"rate_limits": limits, "providers": [provider], "assistants": [assistant]}


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Budgeted]:
    engine = OpenAIDouble(api_key="sk-double")
    with serve_app(engine.app()) as engine_url:
        folder: Path = tmp_path_factory.mktemp("budget-replicas")
        with replicas_and_worker(folder, config(engine_url)) as replicas:
            yield Budgeted(replicas, engine)


@contextmanager
def replicas_and_worker(folder: Path, settings: dict[str, Any]) -> Iterator[list[Replica]]:
    """Two replicas and a worker on a scratch database and a private Redis (no balancer: a
    test names the replica it asks)."""
    config_file = folder / "chatgate.yaml"
    config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with scratch_database() as database_url, private_redis() as redis:
        env = chatgate_environment(
            database_url=database_url, redis_url=redis.url, config=config_file,
            jwt_secret=JWT_SECRET, jwt_audience=JWT_AUDIENCE,
            encryption_keys=TEST_ENCRYPTION_KEYS,
        )  # fmt: skip
        migrate = subprocess.run([CHATGATE, "migrate"], env=env, capture_output=True, text=True)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        replicas = [serve_process(f"r{i}", env, folder) for i in (1, 2)]
        worker = Replica(
            name="worker", port=0, command=[CHATGATE, "worker"],
            env={**env, "CHATGATE_LOG_LEVEL": "INFO"}, log=folder / "worker.log",
        )  # fmt: skip
        try:
            for process in (*replicas, worker):
                process.start()
            deadline = time.monotonic() + START_WITHIN
            for replica in replicas:
                replica.wait_ready(deadline)
            while b"worker ready" not in worker.log.read_bytes():
                assert time.monotonic() < deadline, worker.tail()
                time.sleep(0.2)
            yield replicas
        finally:
            stop_all([*replicas, worker])


@pytest.fixture
async def admin(budgeted: Budgeted) -> AsyncIterator[httpx.AsyncClient]:
    token = make_token(f"admin-{uuid.uuid4().hex[:8]}", admin=True)
    async with httpx.AsyncClient(
        base_url=budgeted.urls[0], headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        yield http


async def new_key(admin: httpx.AsyncClient) -> tuple[str, str]:
    user = f"replica-user-{uuid.uuid4().hex[:8]}"
    made = await admin.post("/v1/admin/keys", json={"name": "b", "kind": "user", "user_id": user})
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["secret"]


async def put_budget(admin: httpx.AsyncClient, key_id: str, max_tokens: int) -> None:
    body = {"period": "day", "max_tokens": max_tokens}
    response = await admin.put(f"/v1/admin/budgets/key/{key_id}", json=body)
    assert response.status_code == 200, response.text


async def budget(admin: httpx.AsyncClient, key_id: str) -> dict[str, Any]:
    for _ in range(100):
        body: dict[str, Any] = (await admin.get(f"/v1/admin/budgets/key/{key_id}")).json()
        if body["reserved_tokens"] == 0:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"reservations stayed open: {body}")


def completion(text: str, *, stream: bool = False) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": text}], "stream": stream}


def edge_admissions(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "chatgate_budget_edge_admissions"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def test_a_key_over_its_budget_is_refused_by_every_replica(
    budgeted: Budgeted, admin: httpx.AsyncClient
) -> None:
    key_id, secret = await new_key(admin)
    await put_budget(admin, key_id, 100)
    headers = {"Authorization": f"Bearer {secret}"}
    first, second = (
        httpx.AsyncClient(base_url=u, headers=headers, timeout=30) for u in budgeted.urls
    )
    async with first, second:
        statuses = []
        for _ in range(20):  # spent through the first replica only
            response = await first.post("/v1/chat/completions", json=completion("hello"))
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429 and 200 in statuses, statuses
        refused = await second.post("/v1/chat/completions", json=completion("hello"))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "budget_exceeded"
        # Raised through the second replica: the first sees it on the next call.
        second_admin = {"Authorization": admin.headers["Authorization"]}
        raised = await second.put(
            f"/v1/admin/budgets/key/{key_id}", json={"period": "day", "max_tokens": 100_000},
            headers=second_admin,
        )  # fmt: skip
        assert raised.status_code == 200, raised.text
        assert (await first.post("/v1/chat/completions", json=completion("hi"))).status_code == 200


async def test_an_answer_written_by_the_worker_settles_its_reservation(
    budgeted: Budgeted, admin: httpx.AsyncClient
) -> None:
    key_id, secret = await new_key(admin)
    await put_budget(admin, key_id, 100_000)
    async with httpx.AsyncClient(
        base_url=budgeted.urls[1], headers={"Authorization": f"Bearer {secret}"}, timeout=30
    ) as http:
        session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
        queued = await http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "[[slow 10 0.05]]", "response_mode": "async"},
        )
        assert queued.status_code == 202, queued.text
        held = (await admin.get(f"/v1/admin/budgets/key/{key_id}")).json()
        for _ in range(100):
            task = (await http.get(f"/v1/tasks/{queued.json()['task_id']}")).json()
            if task["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
    assert task["status"] == "succeeded", task
    spent = await budget(admin, key_id)
    usage = task["message"]["usage"]
    assert held["reserved_tokens"] > 0 or held["spent_tokens"] > 0, held
    assert spent["spent_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], (
        spent,
        usage,
    )


async def test_100_concurrent_requests_overspend_no_more_than_the_bound(
    budgeted: Budgeted, admin: httpx.AsyncClient
) -> None:
    key_id, secret = await new_key(admin)
    await put_budget(admin, key_id, 100_000)
    headers = {"Authorization": f"Bearer {secret}"}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    clients = [
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits)
        for url in budgeted.urls
    ]
    try:
        # Some spent first, then the budget set just above it: nearly spent.
        for n in range(3):
            assert (
                await clients[n % 2].post("/v1/chat/completions", json=completion("[[slow 40 0]]"))
            ).status_code == 200
        spent_before = (await budget(admin, key_id))["spent_tokens"]
        maximum = spent_before + 4 * (ANSWER + 10)
        await put_budget(admin, key_id, maximum)
        edges_before = sum(edge_admissions(url) for url in budgeted.urls)
        served_before = dict(budgeted.engine.served)

        async def one(n: int) -> httpx.Response:
            body = completion("[[slow 40 0.01]]", stream=n % 2 == 0)
            response = await clients[n % 2].post("/v1/chat/completions", json=body)
            await response.aread()
            return response

        responses = await asyncio.gather(*(one(n) for n in range(100)))
    finally:
        for http in clients:
            await http.aclose()
    statuses = [r.status_code for r in responses]
    refused = [r for r in responses if r.status_code == 429]
    assert set(statuses) == {200, 429}, statuses
    assert all(r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    after = await budget(admin, key_id)
    edges = sum(edge_admissions(url) for url in budgeted.urls) - edges_before
    admitted = statuses.count(200)
    used_here = sum(budgeted.engine.served[k] - served_before[k] for k in ("prompt", "completion"))
    overspend = after["spent_tokens"] - maximum
    print(
        f"\nbudget {maximum} tokens ({maximum - spent_before} left before the burst): "
        f"{admitted} of 100 admitted ({int(edges)} at the edge), {len(refused)} refused; "
        f"spent {after['spent_tokens']}, overspend {overspend} tokens "
        f"(bound {int(edges)} x {MAX_ANSWER} = {int(edges) * MAX_ANSWER})"
    )
    # What the engine reported is what the budget holds: every admitted call settled once.
    assert after["spent_tokens"] - spent_before == used_here, (after, used_here)
    assert after["spent_tokens"] <= maximum + edges * MAX_ANSWER
    assert admitted >= 1 and len(refused) >= 90
