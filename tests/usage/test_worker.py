"""A queued answer's engine call is in the ledger as the caller's: the job carries the request's
user, API key and route to the `chatgate worker` that writes it, and the worker, stopped as a
supervisor stops it, writes what it recorded before it exits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.core.config import Settings
from chatgate.usage.models import UsageRecord
from tests.conftest import make_token
from tests.runner import run_chatgate
from tests.tasks.test_worker import (  # noqa: F401  (fixtures)
    http_for,
    queued_settings,
    wait_task,
    workers,
)


@pytest.fixture
def ledger_written_at_stop_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's writer never fires on its own here: its rows are written when it stops."""
    monkeypatch.setenv("CHATGATE_USAGE_WRITE_SECONDS", "300")


async def test_a_workers_engine_call_is_charged_to_the_caller_and_written_at_stop(
    ledger_written_at_stop_only: None,
    queued_settings: Settings,  # noqa: F811
    tmp_path: Path,
    http_for: Any,  # noqa: F811
) -> None:
    with run_chatgate(queued_settings) as api, workers(queued_settings, tmp_path) as procs:
        admin = http_for(api, "ledger-admin")
        admin.headers["Authorization"] = f"Bearer {make_token('ledger-admin', admin=True)}"
        user = f"queued-{procs[0].pid}"
        created = await admin.post(
            "/v1/admin/keys", json={"name": "queue", "kind": "user", "user_id": user}
        )
        assert created.status_code == 201, created.text
        key = created.json()
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {key['secret']}"}, timeout=30
        ) as keyed:
            session = (await keyed.post("/v1/sessions", json={"assistant_id": "echo"})).json()
            sent = await keyed.post(
                f"/v1/sessions/{session['id']}/messages",
                json={"content": "queued words", "response_mode": "async"},
            )
            assert sent.status_code == 202, sent.text
            task = await wait_task(keyed, sent.json()["task_id"], "succeeded")
        assert task["message"]["content"] == "echo: queued words"
    assert procs[0].stderr is not None
    lines = [
        json.loads(line) for line in procs[0].stderr.read().splitlines() if line.startswith(b"{")
    ]
    assert any(line["message"] == "usage ledger: 1 calls written at close" for line in lines)
    engine = create_async_engine(queued_settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = list(await conn.execute(select(UsageRecord).where(UsageRecord.user_id == user)))
    finally:
        await engine.dispose()
    (row,) = rows
    assert (row.route, row.key_id, row.assistant_id, row.engine, row.model) == (
        "chat", key["id"], "echo", "double", "double-echo"
    )  # fmt: skip
    assert row.prompt_tokens > 0 and row.completion_tokens == 3  # "echo: queued words"
