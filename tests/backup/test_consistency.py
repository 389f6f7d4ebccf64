"""A backup taken while people keep talking is one moment of the database: every message in the
archive has its session there too, though sessions are read before messages and writers add
both all along (without a snapshot, a session made between the two reads would be missing).
Large documents, read between the two, hold them a second or more apart."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.chat.models import ChatSession, Message
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow
from chatgate.knowledge.models import DocumentRow, KnowledgeBaseRow
from tests.backup.helpers import archive_rows, run_chatgate_command
from tests.conftest import Gateway, open_caller, read_database
from tests.privacy.helpers import send

SEEDED = 20_000  # enough rows that reading the messages takes a while
DOCUMENTS, DOCUMENT_BYTES = 16, 2_000_000  # random bytes: slow to encode and compress


async def _seed(database_url: str) -> None:
    now = utcnow()
    session_id = new_id()
    async with read_database(database_url) as db:
        await db.execute(
            insert(ChatSession),
            [{"id": session_id, "user_id": "backup-seed", "assistant_id": "echo",
              "title": "", "created_at": now, "updated_at": now}],
        )  # fmt: skip
        for start in range(0, SEEDED, 5000):
            await db.execute(
                insert(Message),
                [{"id": new_id(), "session_id": session_id, "role": "user",
                  "content": f"seeded message {n}", "created_at": now, "updated_at": now}
                 for n in range(start, start + 5000)],
            )  # fmt: skip
        await _seed_documents(db, now)
        await db.commit()


async def _seed_documents(db: AsyncSession, now: datetime) -> None:
    kb_id = f"kb-seed-{secrets.token_hex(4)}"
    await db.execute(
        insert(KnowledgeBaseRow),
        [{"id": kb_id, "name": "seed", "embedder": "local", "dimension": 0,
          "created_at": now, "updated_at": now}],
    )  # fmt: skip
    for n in range(DOCUMENTS):
        content = os.urandom(DOCUMENT_BYTES)
        await db.execute(
            insert(DocumentRow),
            [{"id": new_id(), "kb_id": kb_id, "name": f"seed-{n}.bin", "media_type": "text/plain",
              "sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
              "status": "ready", "content": content, "created_at": now, "updated_at": now}],
        )  # fmt: skip


async def _talk(url: str, stop: asyncio.Event, made: list[float]) -> None:
    async with open_caller(url) as caller:
        while not stop.is_set():
            session = await caller.new_session("echo")
            await send(caller, session["id"], "written during the backup")
            made.append(time.monotonic())


async def test_a_backup_while_writers_insert_is_consistent(
    gateway: Gateway, database_url: str, tmp_path: Path
) -> None:
    await _seed(database_url)
    stop, made = asyncio.Event(), list[float]()
    writers = [asyncio.create_task(_talk(gateway.url, stop, made)) for _ in range(3)]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    result = await run_chatgate_command(database_url, tmp_path, "backup", "live.bak")
    ended = time.monotonic()
    stop.set()
    await asyncio.gather(*writers)
    assert result.returncode == 0, result.stderr

    assert sum(started < at < ended for at in made) >= 5  # people kept talking throughout
    rows = archive_rows(tmp_path / "live.bak")
    sessions = {row[0] for row in rows["sessions"]}
    orphans = [row for row in rows["messages"] if row[1] not in sessions]
    assert not orphans
    assert len(rows["messages"]) >= SEEDED
