"""What /ready and /metrics say about Redis and the task queue: up, queued answers counted, then
down (a Redis of the test's own, really stopped) — /ready is 503 and the gauge the
ChatgateRedisDown rule reads drops to 0."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Double, open_caller, remote_only_settings, serve_chatgate
from tests.doubles.server import free_port
from tests.observability.test_multiprocess import sample


@pytest.fixture
def private_redis() -> Iterator[int]:
    port = free_port()
    subprocess.run(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
         "--save", "", "--appendonly", "no"],
        check=True,
    )  # fmt: skip
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout:
            break
        time.sleep(0.05)
    yield port
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)


async def test_ready_and_metrics_follow_redis(
    tmp_path: Path, openai_double: Double, private_redis: int
) -> None:
    settings = remote_only_settings(
        f"sqlite+aiosqlite:///{tmp_path}/deps.db", openai_double.url,
        redis_url=f"redis://127.0.0.1:{private_redis}/0",
        task_queue=f"chatgate:test:{secrets.token_hex(4)}",
    )  # fmt: skip
    async with serve_chatgate(settings) as url, open_caller(url) as alice:
        ready = await alice.http.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        # No `chatgate worker` runs here: an async answer waits in the queue.
        session = await alice.new_session("echo")
        queued = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "later, please", "response_mode": "async"},
        )
        assert queued.status_code == 202, queued.text
        text = (await alice.http.get("/metrics")).text
        assert sample(text, "chatgate_task_queue_depth") == 1
        assert sample(text, "chatgate_dependency_up", dependency="redis") == 1
        assert sample(text, "chatgate_dependency_up", dependency="database") == 1

        stop = ["redis-cli", "-p", str(private_redis), "shutdown", "nosave"]
        await asyncio.to_thread(subprocess.run, stop, capture_output=True)
        for _ in range(50):
            down = await alice.http.get("/ready")
            if down.status_code == 503:
                break
            await asyncio.sleep(0.1)
        assert down.status_code == 503, down.text
        body = down.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("failed: ")
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            text = (await http.get("/metrics")).text
        assert time.monotonic() - started < 5  # a scrape never hangs on a dead dependency
        assert sample(text, "chatgate_dependency_up", dependency="redis") == 0
        assert sample(text, "chatgate_dependency_up", dependency="database") == 1
