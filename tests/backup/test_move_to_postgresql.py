"""The embedded default moves to PostgreSQL with two commands: its conversations, sealed with the
key file it made on first start, read back on PostgreSQL served with that file's line as
CHATGATE_ENCRYPTION_KEYS."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pydantic import SecretStr

from tests.backup.helpers import fresh_postgres, history_pages, run_chatgate_command
from tests.conftest import Double, open_caller, remote_only_settings, serve_chatgate
from tests.privacy.helpers import send


async def test_the_embedded_default_moves_to_postgresql(
    openai_double: Double, tmp_path: Path
) -> None:
    key_file = tmp_path / "data" / "encryption.keys"
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path}/data/chatgate.db"
    embedded = remote_only_settings(
        sqlite_url, openai_double.url, encryption_keys=None, encryption_key_file=str(key_file)
    )
    async with serve_chatgate(embedded) as url, open_caller(url, "mover") as caller:
        session = await caller.new_session(title="moving day")
        await send(caller, session["id"], "my parcel number is 4711")
        before = await history_pages(url, "mover", session["id"])
        taken = await run_chatgate_command(sqlite_url, tmp_path, "backup", "move.bak")
        assert taken.returncode == 0, taken.stderr

    pg = fresh_postgres()
    pg_url = await asyncio.to_thread(pg.__enter__)
    try:
        restored = await run_chatgate_command(pg_url, tmp_path, "restore", "move.bak")
        assert restored.returncode == 0, restored.stderr
        keys = SecretStr(key_file.read_text().strip())
        moved = remote_only_settings(pg_url, openai_double.url, encryption_keys=keys)
        async with serve_chatgate(moved) as url:
            after = await history_pages(url, "mover", session["id"])
    finally:
        await asyncio.to_thread(pg.__exit__, None, None, None)
    assert after == before
    assert "my parcel number is 4711" in [m["content"] for page in after for m in page["data"]]
    with sqlite3.connect(tmp_path / "data" / "chatgate.db") as db:  # it was sealed by the file
        stored = [row[0] for row in db.execute("SELECT content FROM messages")]
    assert stored and all(text.startswith("cg1:") for text in stored)
