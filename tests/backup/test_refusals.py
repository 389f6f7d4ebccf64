"""What restore refuses, before it loads anything: a truncated archive, an altered one (a byte
of the file, or a byte of its content recompressed), an archive without its data keys, a
database that already holds data (unless --force, which replaces it whole)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import orjson

from tests.backup.conftest import Source
from tests.backup.helpers import (
    archive_rows,
    fresh_postgres,
    postgres_tables,
    run_chatgate_command,
)


def _copy_with_keys(source: Source, folder: Path, name: str) -> Path:
    archive = folder / name
    shutil.copy(source.archive, archive)
    shutil.copy(f"{source.archive}.keys", f"{archive}.keys")
    return archive


def _cut_tail(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:-size])


def _truncated(source: Source, folder: Path) -> Path:
    archive = _copy_with_keys(source, folder, "truncated.bak")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    return archive


def _byte_flipped(source: Source, folder: Path) -> Path:
    archive = _copy_with_keys(source, folder, "flipped.bak")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    return archive


def _content_altered(source: Source, folder: Path) -> Path:
    """A whole, well-compressed file whose content differs by one byte: only the checksum
    can tell."""
    archive = _copy_with_keys(source, folder, "altered.bak")
    content = gzip.decompress(archive.read_bytes())
    at = content.index(b'"backup-bob"')
    archive.write_bytes(gzip.compress(content[:at] + b'"backup-bOb"' + content[at + 12 :]))
    return archive


def _structure_altered(source: Source, folder: Path) -> Path:
    """A table's line that no longer names a table: still the checksum that tells."""
    archive = _copy_with_keys(source, folder, "restructured.bak")
    content = gzip.decompress(archive.read_bytes()).replace(b'{"table"', b'{"tabme"', 1)
    archive.write_bytes(gzip.compress(content))
    return archive


def _of_revision(source: Source, folder: Path, revision: str) -> Path:
    """A whole archive, checksum and all, that claims another schema revision."""
    archive = _copy_with_keys(source, folder, f"revision-{revision}.bak")
    lines = gzip.decompress(archive.read_bytes()).splitlines(keepends=True)
    header = orjson.loads(lines[0]) | {"schema_revision": revision}
    body = [orjson.dumps(header) + b"\n", *lines[1:-1]]
    trailer = orjson.loads(lines[-1])
    trailer["end"]["sha256"] = hashlib.sha256(b"".join(body)).hexdigest()
    archive.write_bytes(gzip.compress(b"".join([*body, orjson.dumps(trailer) + b"\n"])))
    return archive


async def test_an_archive_of_another_schema_revision_is_refused(
    source: Source, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    url = f"sqlite+aiosqlite:///{target}"
    for revision in ("9999", "0001"):
        archive = _of_revision(source, tmp_path, revision)
        result = await run_chatgate_command(url, tmp_path, "restore", str(archive))
        assert result.returncode == 1 and "(schema_mismatch)" in result.stderr, result.stderr
        assert revision in result.stderr
        assert not target.exists() or not _sqlite_tables(target)


async def test_a_damaged_archive_is_refused_and_sqlite_is_left_untouched(
    source: Source, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    url = f"sqlite+aiosqlite:///{target}"
    for damaged, code in (
        (_truncated(source, tmp_path), "archive_corrupt"),
        (_byte_flipped(source, tmp_path), "archive_"),
        (_content_altered(source, tmp_path), "archive_checksum"),
        (_structure_altered(source, tmp_path), "archive_checksum"),
    ):
        result = await run_chatgate_command(url, tmp_path, "restore", str(damaged))
        assert result.returncode == 1, result.stderr
        assert f"({code}" in result.stderr and "Traceback" not in result.stderr, result.stderr
        # Refused before the database was even migrated.
        assert not target.exists() or not _sqlite_tables(target)


async def test_a_damaged_archive_is_refused_and_postgresql_is_left_untouched(
    source: Source, tmp_path: Path
) -> None:
    pg = fresh_postgres()
    url = await asyncio.to_thread(pg.__enter__)
    try:
        for damaged in (_truncated(source, tmp_path), _content_altered(source, tmp_path)):
            result = await run_chatgate_command(url, tmp_path, "restore", str(damaged))
            assert result.returncode == 1 and "(archive_" in result.stderr, result.stderr
            assert await postgres_tables(url) == []
    finally:
        await asyncio.to_thread(pg.__exit__, None, None, None)


async def test_an_altered_keys_file_or_none_is_refused(source: Source, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/target.db"
    archive = _copy_with_keys(source, tmp_path, "lonely.bak")
    keys = Path(f"{archive}.keys")
    _cut_tail(keys, 9)
    result = await run_chatgate_command(url, tmp_path, "restore", str(archive))
    assert result.returncode == 1 and "(archive_corrupt)" in result.stderr, result.stderr
    os.remove(keys)
    result = await run_chatgate_command(url, tmp_path, "restore", str(archive))
    assert result.returncode == 1 and "(keys_missing)" in result.stderr, result.stderr
    assert "--keys" in result.stderr


async def test_an_archive_that_cannot_be_written_is_a_clear_error(
    source: Source, tmp_path: Path
) -> None:
    result = await run_chatgate_command(
        source.database_url, tmp_path, "backup", str(tmp_path / "nowhere" / "x.bak")
    )
    assert result.returncode == 1 and "(archive_unwritable)" in result.stderr, result.stderr


async def test_a_database_holding_data_is_refused_without_force(
    source: Source, tmp_path: Path
) -> None:
    pg = fresh_postgres()
    url = await asyncio.to_thread(pg.__enter__)
    try:
        first = await run_chatgate_command(url, tmp_path, "restore", str(source.archive))
        assert first.returncode == 0, first.stderr
        again = await run_chatgate_command(url, tmp_path, "restore", str(source.archive))
        assert again.returncode == 1 and "(database_not_empty)" in again.stderr, again.stderr
        assert "--force" in again.stderr
        forced = await run_chatgate_command(
            url, tmp_path, "restore", "--force", str(source.archive)
        )
        assert forced.returncode == 0, forced.stderr
        taken = await run_chatgate_command(url, tmp_path, "backup", "after.bak")
        assert taken.returncode == 0, taken.stderr
    finally:
        await asyncio.to_thread(pg.__exit__, None, None, None)
    # Replaced, not added to: the same rows as the archive, once.
    assert archive_rows(tmp_path / "after.bak") == archive_rows(source.archive)


async def test_force_on_sqlite_replaces_the_keyword_index_too(
    source: Source, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    url = f"sqlite+aiosqlite:///{target}"
    for args in (("restore",), ("restore", "--force")):
        result = await run_chatgate_command(url, tmp_path, *args, str(source.archive))
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(target) as db:
        chunks = db.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0]
        indexed = db.execute("SELECT count(*) FROM knowledge_chunks_fts").fetchone()[0]
    assert chunks == indexed == len(archive_rows(source.archive)["knowledge_chunks"])


def _sqlite_tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
