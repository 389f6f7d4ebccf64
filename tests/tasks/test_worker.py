"""Async answers on the Redis queue, written by `chatgate worker` processes."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from arq.jobs import Job

from chatgate.core.config import Settings
from chatgate.tasks.queue import JobCodec, queue_redis
from chatgate.vault.keyring import KeyRing
from tests.conftest import TEST_ENCRYPTION_KEYS, Double, make_token, parse_sse, settings_for
from tests.runner import run_chatgate

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def queued_settings(database_url: str, openai_double: Double, tmp_path: Path) -> Settings:
    base = settings_for(database_url, openai_double.url)
    return base.model_copy(update={
        "redis_url": REDIS_URL,
        "task_queue": f"chatgate-test:{secrets.token_hex(4)}",
        "providers": [p for p in base.providers if p.type != "local"],
        "assistants": [a for a in base.assistants if a.provider != "local"],
    })  # fmt: skip


@contextmanager
def workers(
    settings: Settings, tmp_path: Path, count: int = 1, concurrency: int = 8
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Starts `chatgate worker` processes and waits until each says it is ready."""
    config = tmp_path / "worker.yaml"
    config.write_text(yaml.safe_dump({
        "providers": [p.model_dump(mode="json") for p in settings.providers],
        "assistants": [a.model_dump(mode="json") for a in settings.assistants],
    }))  # fmt: skip
    env = {
        **os.environ,
        "CHATGATE_CONFIG": str(config),
        "CHATGATE_DATABASE_URL": settings.database_url,
        "CHATGATE_REDIS_URL": settings.redis_url or REDIS_URL,
        "CHATGATE_TASK_QUEUE": settings.task_queue,
        "CHATGATE_STREAM_FLUSH_SECONDS": "0.2",
        "CHATGATE_WORKER_CONCURRENCY": str(concurrency),
    }
    procs = [
        subprocess.Popen([sys.executable, "-m", "chatgate.cli", "worker"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(count)
    ]  # fmt: skip
    for proc in procs:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"worker ready" in line:
                break
        else:
            raise RuntimeError("a worker exited before it was ready")
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


@pytest.fixture
async def http_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(url: str, user: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {make_token(user)}"}, timeout=30
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def ask_async(http: httpx.AsyncClient, content: str) -> tuple[str, str]:
    session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
    response = await http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": content, "response_mode": "async"},
    )
    assert response.status_code == 202, response.text
    return session["id"], response.json()["task_id"]


async def wait_task(
    http: httpx.AsyncClient, task_id: str, status: str, seconds: float = 30
) -> dict[str, Any]:
    task: dict[str, Any] = {}
    for _ in range(int(seconds / 0.1)):
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
        if task["status"] == status:
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} stayed {task.get('status')}, wanted {status}")


async def test_worker_logs_under_the_trace_id_of_the_request(
    queued_settings: Settings, tmp_path: Path, http_for: Any
) -> None:
    with run_chatgate(queued_settings) as api, workers(queued_settings, tmp_path) as procs:
        http = http_for(api, "traced-user")
        session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
        response = await http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "trace this task", "response_mode": "async"},
        )
        await wait_task(http, response.json()["task_id"], "succeeded")
    assert procs[0].stderr is not None
    lines = [
        json.loads(line) for line in procs[0].stderr.read().splitlines() if line.startswith(b"{")
    ]
    written = [line for line in lines if line["message"] == "answer written"]
    assert written and written[0]["trace_id"] == response.headers["x-trace-id"]
    assert written[0]["message_id"] == response.json()["task_id"]
    assert not any("trace this task" in json.dumps(line) for line in lines)


async def test_queued_task_survives_an_api_restart(
    queued_settings: Settings, tmp_path: Path, http_for: Any
) -> None:
    with run_chatgate(queued_settings) as first_api:
        http = http_for(first_api, "async-user")
        _, task_id = await ask_async(http, "remember me")
        assert (await http.get(f"/v1/tasks/{task_id}")).json()["status"] == "queued"
    # The API process is gone; no worker has run yet. A new API and a worker pick it up.
    with run_chatgate(queued_settings) as second_api, workers(queued_settings, tmp_path):
        http = http_for(second_api, "async-user")
        task = await wait_task(http, task_id, "succeeded")
    assert task["message"]["content"] == "echo: remember me"
    assert task["message"]["status"] == "complete"


async def test_several_workers_share_the_load(
    queued_settings: Settings, tmp_path: Path, http_for: Any
) -> None:
    with (
        run_chatgate(queued_settings) as api,
        workers(queued_settings, tmp_path, count=2, concurrency=1),
    ):
        http = http_for(api, "load-user")
        tasks = [(await ask_async(http, "[[slow 8 0.1]]"))[1] for _ in range(6)]
        for task_id in tasks:
            done = await wait_task(http, task_id, "succeeded")
            assert done["message"]["content"] == " ".join(f"w{i}" for i in range(8)) + " "
        # Jobs and their results are JSON (never pickle), sealed: read with chatgate's codec.
        codec = JobCodec(KeyRing.parse(TEST_ENCRYPTION_KEYS))
        redis = queue_redis(REDIS_URL, codec)
        results = [
            await Job(
                t, redis, _queue_name=queued_settings.task_queue, _deserializer=codec.decode
            ).result(timeout=5)
            for t in tasks
        ]
        await redis.aclose()
    assert len({r["worker"] for r in results}) == 2


async def test_stop_reaches_the_worker_and_keeps_the_text(
    queued_settings: Settings, tmp_path: Path, http_for: Any
) -> None:
    with run_chatgate(queued_settings) as api, workers(queued_settings, tmp_path):
        http = http_for(api, "stop-user")
        session_id, task_id = await ask_async(http, "[[slow 200 0.05]]")
        await wait_task(http, task_id, "running")
        for _ in range(50):
            page = (await http.get(f"/v1/history/{session_id}")).json()
            if page["data"][1]["content"]:
                break
            await asyncio.sleep(0.1)
        stop = (await http.post(f"/v1/sessions/{session_id}/stop")).json()
        assert stop["stopped"] is True
        assert stop["message"]["status"] == "interrupted"
        kept = stop["message"]["content"]
        assert kept.startswith("w0 w1") and len(kept.split()) < 200
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
        assert task["status"] == "failed" and task["message"]["content"] == kept


async def test_a_workers_answer_fills_the_cache_for_the_next_asker(
    queued_settings: Settings, tmp_path: Path, http_for: Any
) -> None:
    question = f"What are your opening hours, shop {secrets.token_hex(4)}?"
    with run_chatgate(queued_settings) as api, workers(queued_settings, tmp_path):
        first = http_for(api, "first-asker")
        _, task_id = await ask_async(first, question)
        written = await wait_task(first, task_id, "succeeded")
        assert written["message"]["cached"] is False
        # Another user, a new session, the same question: no engine.
        other = http_for(api, "second-asker")
        answered = await other.post("/v1/qa", json={"question": question, "assistant_id": "echo"})
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-cache"] == "hit"
    assert answered.json()["answer"] == written["message"]["content"] == f"echo: {question}"


async def test_a_workers_answer_streams_its_events_from_the_api(
    queued_settings: Settings, tmp_path: Path, http_for: Any
) -> None:
    """The API logs the task's message_start, the worker numbers its events after it, and any
    API process tails them (`GET /v1/tasks/{id}/events`), resuming after a given id."""
    with run_chatgate(queued_settings) as api, workers(queued_settings, tmp_path):
        http = http_for(api, "events-user")
        _, task_id = await ask_async(http, f"[[slow 20 0.05]] {secrets.token_hex(4)}")
        seen: list[dict[str, Any]] = []
        async with http.stream("GET", f"/v1/tasks/{task_id}/events") as response:
            assert response.status_code == 200
            raw = ""
            async for chunk in response.aiter_text():
                raw += chunk
                if raw.count("event: delta") >= 5 and raw.endswith("\n\n"):
                    break
            seen = parse_sse(raw)
        rest_raw = (
            await http.get(f"/v1/tasks/{task_id}/events", headers={"Last-Event-ID": seen[-1]["id"]})
        ).text
        events = seen + parse_sse(rest_raw)
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "message_start"
    assert events[0]["data"]["message_id"] == task_id
    assert events[-1]["event"] == "message_end"
    text = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
    assert text == events[-1]["data"]["message"]["content"] == "".join(f"w{i} " for i in range(20))
