"""Restores an archive into the configured database: both files verified whole first, the
schema migrated to head, then every row loaded in one transaction (with `--force`, after
emptying the tables in that same transaction), so a failure leaves the database as it was."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.backup.archive import BackupError, TableStart, Trailer, read_lines, verify
from chatgate.backup.tables import as_stored, ordered_tables
from chatgate.backup.values import Codec, decoder, stored_type
from chatgate.core.db import create_engine

BATCH = 1000


@dataclass(frozen=True, slots=True)
class Verified:
    """An archive file `verify` accepted, with the trailer its content must match again."""

    path: Path
    trailer: Trailer


def check_archives(data: Path, keys: Path, *, head: str) -> list[Verified]:
    """Both parts whole, of this code's schema revision; nothing is touched before this."""
    header, trailer = verify(data, "data")
    if not keys.exists():
        raise BackupError(
            "keys_missing",
            f"no data keys file at {keys}: `chatgate backup` writes it beside the archive; "
            "give its place with --keys",
        )
    keys_header, keys_trailer = verify(keys, "keys")
    for part in (header, keys_header):
        if part.schema_revision != head:
            raise BackupError(
                "schema_mismatch",
                f"the archive is of schema revision {part.schema_revision} and this chatgate's "
                f"is {head}: restore with the chatgate version that wrote it, then upgrade "
                "(an archive from a newer chatgate needs that version)",
            )
    return [Verified(data, trailer), Verified(keys, keys_trailer)]


async def restore(database_url: str, archives: list[Verified], *, force: bool) -> dict[str, int]:
    """Loads verified archives into a database already migrated to head; rows per table."""
    tables = {t.name: t for t in ordered_tables()}
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, from the start
            await _make_room(conn, list(tables.values()), force=force)
            loaded: dict[str, int] = {}
            for archive in archives:
                loaded |= await _load(conn, archive, tables)
            await _advance_sequences(conn, list(tables.values()))
            await conn.commit()
    finally:
        await engine.dispose()
    return loaded


async def _make_room(conn: AsyncConnection, tables: list[Table], *, force: bool) -> None:
    holding = [t.name for t in tables if await _has_rows(conn, t)]
    if not holding:
        return
    if not force:
        raise BackupError(
            "database_not_empty",
            f"the database already holds data (in {', '.join(holding)}); "
            "restore into an empty one, or pass --force to replace everything in it",
        )
    if conn.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        await conn.execute(text(f"TRUNCATE {names}"))
        return
    # Children first; DELETE (not a rebuilt file) so the FTS5 triggers empty the keyword index.
    for table in reversed(tables):
        await conn.execute(delete(table))


async def _has_rows(conn: AsyncConnection, table: Table) -> bool:
    return (await conn.execute(select(text("1")).select_from(table).limit(1))).first() is not None


async def _load(
    conn: AsyncConnection, archive: Verified, tables: dict[str, Table]
) -> dict[str, int]:
    loaded: dict[str, int] = {}
    for start, rows in _batches(archive):
        target = _target(start, tables)
        decoders = [decoder(stored_type(c)) for c in target.columns]
        values = [
            {
                name: decode(value)
                for name, decode, value in zip(start.columns, decoders, row, strict=True)
            }
            for row in rows
        ]
        await conn.execute(insert(as_stored(target)), values)
        loaded[start.name] = loaded.get(start.name, 0) + len(rows)
    return loaded


def _decoded(names: list[str], decoders: list[Codec], row: list[Any]) -> dict[str, Any]:
    return {name: decode(value) for name, decode, value in zip(names, decoders, row, strict=True)}


def _batches(archive: Verified) -> Iterator[tuple[TableStart, list[list[Any]]]]:
    """Each table's rows, `BATCH` at a time (tables without rows yield nothing)."""
    start: TableStart | None = None
    rows: list[list[Any]] = []
    for item in read_lines(archive.path, archive.trailer):
        if isinstance(item, TableStart):
            if start is not None and rows:
                yield start, rows
            start, rows = item, []
            continue
        rows.append(item)
        if len(rows) >= BATCH:
            assert start is not None
            yield start, rows
            rows = []
    if start is not None and rows:
        yield start, rows


def _target(start: TableStart, tables: dict[str, Table]) -> Table:
    """The table the archive's rows go to, with the archive's columns in the same order (the
    revision is the same, so only a damaged or hand-made archive can differ)."""
    target = tables.get(start.name)
    if target is None or [c.name for c in target.columns] != start.columns:
        raise BackupError(
            "archive_schema", f"the archive's table {start.name} does not match this chatgate's"
        )
    return target


async def _advance_sequences(conn: AsyncConnection, tables: list[Table]) -> None:
    """PostgreSQL: an integer key's sequence moved past the ids loaded (no table has one today:
    ids are UUIDs or names; one added later gets this with no change here)."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        key = table.autoincrement_column
        if key is None:
            continue
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{key.name}'), "
                f'coalesce(max("{key.name}"), 0) + 1, false) FROM "{table.name}"'
            )
        )
