"""SQLite → archive → PostgreSQL → archive → SQLite: the same rows and ids, the same history
pages from every server, the keyword search answering after each restore (its index rebuilt by
the database, not copied), and sealed text still sealed in the archive."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.backup.conftest import Source
from tests.backup.helpers import (
    archive_header,
    archive_rows,
    fresh_postgres,
    history_pages,
    keyword_search,
    run_chatgate_command,
)
from tests.conftest import serve_chatgate


async def test_sqlite_to_postgresql_and_back_to_an_archive(source: Source, tmp_path: Path) -> None:
    pg = fresh_postgres()
    target_url = await asyncio.to_thread(pg.__enter__)
    try:
        restored = await run_chatgate_command(target_url, tmp_path, "restore", str(source.archive))
        assert restored.returncode == 0, restored.stderr
        async with serve_chatgate(source.settings_for(target_url)) as target:
            for user, session_id in source.made["sessions"]:
                before = await history_pages(source.made["history_url"], user, session_id)
                after = await history_pages(target, user, session_id)
                assert len(after) == 3 and after == before  # 6 messages, 2 a page
            found = await keyword_search(target, source.made["kb"])
            assert found and found == await keyword_search(
                source.made["history_url"], source.made["kb"]
            )
            again = await run_chatgate_command(target_url, tmp_path, "backup", "again.bak")
            assert again.returncode == 0, again.stderr
    finally:
        await asyncio.to_thread(pg.__exit__, None, None, None)

    first, second = archive_rows(source.archive), archive_rows(tmp_path / "again.bak")
    assert first == second
    assert len(first["messages"]) == 24 and len(first["knowledge_chunks"]) >= 1
    keys = archive_rows(Path(f"{source.archive}.keys"))
    assert keys == archive_rows(tmp_path / "again.bak.keys")
    owners = {row[0] for row in keys["data_keys"]}  # each user's data key, apart from the data
    assert {"backup-alice", "backup-bob"} <= owners
    assert archive_header(source.archive)["dialect"] == "sqlite"
    assert archive_header(tmp_path / "again.bak")["dialect"] == "postgresql"


def test_sealed_text_stays_sealed_in_the_archive(source: Source) -> None:
    rows = archive_rows(source.archive)
    contents = [row[3] for row in rows["messages"]]
    assert contents and all(text.startswith("cg1:") for text in contents)
    assert all(row[3].startswith("cg1:") for row in rows["sessions"])  # titles
    raw = source.archive.read_bytes()
    import gzip

    assert "订单".encode() not in gzip.decompress(raw)


async def test_postgresql_archive_back_into_sqlite(source: Source, tmp_path: Path) -> None:
    pg = fresh_postgres()
    pg_url = await asyncio.to_thread(pg.__enter__)
    try:
        loaded = await run_chatgate_command(pg_url, tmp_path, "restore", str(source.archive))
        assert loaded.returncode == 0, loaded.stderr
        taken = await run_chatgate_command(pg_url, tmp_path, "backup", "from-pg.bak")
        assert taken.returncode == 0, taken.stderr
    finally:
        await asyncio.to_thread(pg.__exit__, None, None, None)
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path}/moved-back.db"
    restored = await run_chatgate_command(sqlite_url, tmp_path, "restore", "from-pg.bak")
    assert restored.returncode == 0, restored.stderr
    async with serve_chatgate(source.settings_for(sqlite_url)) as target:
        user, session_id = source.made["sessions"][-1]
        assert await history_pages(target, user, session_id) == await history_pages(
            source.made["history_url"], user, session_id
        )
        found = await keyword_search(target, source.made["kb"])
        assert found and found == await keyword_search(
            source.made["history_url"], source.made["kb"]
        )
        again = await run_chatgate_command(sqlite_url, tmp_path, "backup", "again.bak")
        assert again.returncode == 0, again.stderr
    assert archive_rows(tmp_path / "again.bak") == archive_rows(source.archive)
