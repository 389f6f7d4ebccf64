"""What the backup suites share: the `chatgate` command run as a person runs it, fresh
databases of each kind, a small deployment with conversations and a knowledge base, and the
rows an archive holds."""

from __future__ import annotations

import asyncio
import gzip
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from tests.conftest import (
    PG_ADMIN_URL,
    TEST_ENCRYPTION_KEYS,
    _create_pg_database,
    _drop_pg_database,
    open_caller,
)
from tests.knowledge.helpers import new_kb, settled, upload
from tests.privacy.helpers import admin_client, send

CHATGATE = str(Path(sys.executable).with_name("chatgate"))
KEYWORD = "quokkabridge"  # a word only the test document holds


def chatgate(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    env |= {"CHATGATE_DATABASE_URL": database_url, "CHATGATE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS}
    return subprocess.run(
        [CHATGATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


async def run_chatgate_command(
    database_url: str, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(chatgate, database_url, cwd, *args)


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"chatgate_backup_{secrets.token_hex(4)}"
    asyncio.run(_create_pg_database(name))
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_drop_pg_database(name))


async def postgres_tables(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return [row["tablename"] for row in rows]


async def fill_deployment(url: str) -> dict[str, Any]:
    """Two users' conversations through the echo engine, and a knowledge base with a document;
    the ids of what was made."""
    sessions: list[tuple[str, str]] = []
    for user in ("backup-alice", "backup-bob"):
        async with open_caller(url, user) as caller:
            for number in range(2):
                session = await caller.new_session(title=f"{user}'s talk {number} 你好")
                for turn in range(3):
                    await send(caller, session["id"], f"{user} says {turn}: 订单 {number}")
                sessions.append((user, session["id"]))
    async with admin_client(url) as admin:
        kb = await new_kb(admin)
        text = f"The {KEYWORD} crosses the river at dawn.\n\nOther lines about ferries."
        response = await upload(admin, kb["id"], "bridge.txt", text.encode(), "text/plain")
        assert response.status_code == 202, response.text
        document = await settled(admin, kb["id"], response.json()["id"])
        assert document["status"] == "ready", document
    return {"sessions": sessions, "kb": kb["id"]}


async def history_pages(url: str, user: str, session_id: str) -> list[dict[str, Any]]:
    """Every page of a session's history, two messages a page."""
    pages: list[dict[str, Any]] = []
    async with open_caller(url, user) as caller:
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = await caller.history(session_id, **params)
            pages.append(page)
            if not page["has_more"]:
                return pages
            params["before"] = page["next_before"]


async def keyword_search(url: str, kb_id: str) -> list[dict[str, Any]]:
    async with admin_client(url) as admin:
        response = await admin.post(
            f"/v1/admin/knowledge-bases/{kb_id}/search",
            json={"query": KEYWORD, "mode": "keyword"},
        )
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def archive_rows(path: Path) -> dict[str, list[list[Any]]]:
    """Each table's rows in an archive, sorted (row order differs between databases)."""
    tables: dict[str, list[list[Any]]] = {}
    current = ""
    with gzip.open(path, "rb") as stream:
        for line in stream:
            parsed = orjson.loads(line)
            if isinstance(parsed, list):
                tables[current].append(parsed)
            elif "table" in parsed:
                current = parsed["table"]
                tables[current] = []
    return {name: sorted(rows, key=orjson.dumps) for name, rows in tables.items()}


def archive_header(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as stream:
        return orjson.loads(stream.readline())  # type: ignore[no-any-return]
