"""Async answers when the queue cannot take them or no worker runs: the session is never left
locked, a stop answers at once, and a job is never read with pickle."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool

from tests.conftest import Caller, Double, open_caller, remote_only_settings
from tests.faults.conftest import ControlledRedis
from tests.runner import run_chatgate
from tests.tasks.test_worker import wait_task, workers

BOUND = 3.0


async def send_async(caller: Caller, session_id: str, content: str) -> dict[str, Any]:
    response = await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, "response_mode": "async"}
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def own_queue_settings(database_url: str, double: Double, redis: ControlledRedis) -> Any:
    """Settings on the private Redis with a queue of this test's own."""
    return remote_only_settings(
        database_url, double.url, redis_url=redis.url,
        task_queue=f"faults:{os.getpid()}:{time.monotonic_ns()}",
    )  # fmt: skip


async def test_a_queue_that_cannot_be_reached_writes_the_answer_here(
    database_url: str, openai_double: Double, faulty_redis: ControlledRedis
) -> None:
    settings = remote_only_settings(database_url, openai_double.url, redis_url=faulty_redis.url)
    with run_chatgate(settings) as url:
        async with open_caller(url) as caller:
            session = await caller.new_session()
            faulty_redis.kill()
            try:
                task = await send_async(caller, session["id"], "queue down")
                done = await wait_task(caller.http, task["task_id"], "succeeded", seconds=10)
                assert done["message"]["content"] == "echo: queue down"
                # Not locked: the next message is taken too.
                again = await send_async(caller, session["id"], "still down")
                await wait_task(caller.http, again["task_id"], "succeeded", seconds=10)
            finally:
                faulty_redis.start()


async def test_stop_without_a_worker_ends_the_queued_answer_at_once(
    database_url: str, openai_double: Double, faulty_redis: ControlledRedis, tmp_path: Path
) -> None:
    settings = own_queue_settings(database_url, openai_double, faulty_redis)
    with run_chatgate(settings) as url:
        async with open_caller(url) as caller:
            session = await caller.new_session()
            task = await send_async(caller, session["id"], "nobody writes this")
            started = time.monotonic()
            stop = await caller.http.post(f"/v1/sessions/{session['id']}/stop")
            assert time.monotonic() - started < BOUND
            assert stop.status_code == 200, stop.text
            assert stop.json()["stopped"] is True
            assert stop.json()["message"]["status"] == "interrupted"
            assert (await caller.http.get(f"/v1/tasks/{task['task_id']}")).json()[
                "status"
            ] == "failed"
            # The session takes the next message, and a worker started later skips the
            # stopped job and writes the new one.
            second = await send_async(caller, session["id"], "this one")
            with workers(settings, tmp_path):
                done = await wait_task(caller.http, second["task_id"], "succeeded")
            assert done["message"]["content"] == "echo: this one"
            stopped = (await caller.http.get(f"/v1/tasks/{task['task_id']}")).json()
            assert stopped["status"] == "failed"
            assert stopped["message"]["content"] == ""


class _Planted:
    """Unpickling this runs code: what anyone able to write to Redis could queue."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


async def test_a_pickled_job_is_never_unpickled(
    database_url: str, openai_double: Double, faulty_redis: ControlledRedis, tmp_path: Path
) -> None:
    settings = own_queue_settings(database_url, openai_double, faulty_redis)
    planted = tmp_path / "pwned"
    redis = await create_pool(RedisSettings.from_dsn(faulty_redis.url))  # arq's default: pickle
    try:
        await redis.enqueue_job("write_answer", _Planted(planted), _queue_name=settings.task_queue)
        pickle.loads(pickle.dumps(_Planted(tmp_path / "check")))  # the payload does run...
        assert (tmp_path / "check").exists()
        with workers(settings, tmp_path):
            await asyncio.sleep(2)  # the worker polls every half second
    finally:
        await redis.aclose()
    assert not planted.exists()  # ...but the worker never unpickled it
