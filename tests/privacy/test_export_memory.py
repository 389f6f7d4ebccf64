"""An export's memory does not grow with the number of messages: the peak RSS growth of the
process serving it (the test's own: `run_chatgate` serves from a thread of it) is measured for
users of 2,000 and 20,000 messages, each format, on SQLite and PostgreSQL.

An export built in memory would grow by the body at least (about 16 MB of JSON for 20,000
messages) and by the rows as Python objects (several times that); streamed, both grow by a
batch's worth (bench/export.py: under 2 MB at 10,000 and at 100,000). The margin allowed is far
above the streamed figures and far below the built ones. The peak is reset through
/proc/self/clear_refs just before each export, so each measures its own."""

from __future__ import annotations

import json
import random
import tempfile
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import httpx
import pytest
from sqlalchemy import insert

from chatgate.chat.models import ChatSession, Message
from chatgate.core.ids import new_id
from tests.conftest import Gateway, make_token, read_database

SMALL, LARGE = 2_000, 20_000
PER_SESSION = 100
MARGIN_MB = 10.0
WORDS = ["order", "parcel", "refund", "invoice", "address", "delivery", "tracking", "week"]


async def seed_user(database_url: str, user_id: str, count: int) -> None:
    """`count` messages in sessions of PER_SESSION, written straight into the database (through
    the HTTP API, 20,000 would take minutes)."""
    rng = random.Random(count)
    start = datetime.now(UTC) - timedelta(hours=1)
    async with read_database(database_url) as db:
        for first in range(0, count, PER_SESSION):
            session_id = new_id()
            size = min(PER_SESSION, count - first)
            await db.execute(
                insert(ChatSession).values(
                    id=session_id, user_id=user_id, assistant_id="echo", title=f"Chat {first}",
                    message_count=size, created_at=start, updated_at=start,
                )
            )  # fmt: skip
            rows = [
                {
                    "id": new_id(),
                    "session_id": session_id,
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": " ".join(rng.choices(WORDS, k=rng.randint(10, 150))),
                    "status": "complete",
                    "token_count": 10,
                    "created_at": start + timedelta(milliseconds=i),
                    "updated_at": start + timedelta(milliseconds=i),
                }
                for i in range(size)
            ]
            await db.execute(insert(Message), rows)
        await db.commit()


def reset_peak() -> int:
    """Sets this process's peak RSS (VmHWM) to its RSS now, and returns that."""
    Path("/proc/self/clear_refs").write_text("5")
    return memory_kb("VmRSS")


def memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


async def peak_growth_mb(
    gateway: Gateway, user_id: str, export_format: str, body: IO[bytes]
) -> float:
    headers = {"Authorization": f"Bearer {make_token(user_id)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=120) as http:
        before = reset_peak()
        params = {"format": export_format}
        async with http.stream("GET", "/v1/me/export", params=params) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                body.write(chunk)
        growth = (memory_kb("VmHWM") - before) / 1024
    body.seek(0)
    return growth


def exported_messages(body: IO[bytes], export_format: str) -> int:
    if export_format == "json":
        return sum(len(s["messages"]) for s in json.load(body)["sessions"])
    with zipfile.ZipFile(body) as archive:
        return sum(archive.read(name).decode().count("\n## ") for name in archive.namelist())


@pytest.mark.parametrize("export_format", ["json", "markdown"])
async def test_an_exports_memory_does_not_grow_with_its_messages(
    gateway: Gateway, export_format: str
) -> None:
    run = uuid.uuid4().hex[:8]
    users = {count: f"memory-{count}-{run}" for count in (200, SMALL, LARGE)}
    for count, user_id in users.items():
        await seed_user(gateway.settings.database_url, user_id, count)
    growth: dict[int, float] = {}
    for count, user_id in users.items():  # 200 first: imports and first-use allocations
        with tempfile.TemporaryFile() as body:
            growth[count] = await peak_growth_mb(gateway, user_id, export_format, body)
            assert exported_messages(body, export_format) == count
    assert growth[LARGE] < growth[SMALL] + MARGIN_MB, growth
