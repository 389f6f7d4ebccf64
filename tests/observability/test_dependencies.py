"""What /ready and /metrics say about Redis and the task queue: up, queued answers counted, then
down (a Redis of the test's own, really stopped) — /ready is 503 and the gauge the
ChatgateRedisDown rule reads drops to 0."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx

from tests.conftest import Double, PrivateRedis, open_caller, remote_only_settings, serve_chatgate
from tests.observability.test_multiprocess import sample


async def test_ready_and_metrics_follow_redis(
    tmp_path: Path, openai_double: Double, private_redis: PrivateRedis
) -> None:
    settings = remote_only_settings(
        f"sqlite+aiosqlite:///{tmp_path}/deps.db", openai_double.url,
        redis_url=private_redis.url,
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

        await asyncio.to_thread(private_redis.stop)
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
