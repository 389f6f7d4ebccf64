"""Writes an archive from one read-only snapshot of a database that keeps serving: a REPEATABLE
READ READ ONLY transaction on PostgreSQL, one read transaction of the WAL on SQLite. Rows are
streamed (a server-side cursor, `yield_per`), so memory stays flat whatever the size."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.backup.archive import ArchiveWriter, BackupError, Header
from chatgate.backup.tables import KEY_TABLES, ordered_tables
from chatgate.backup.values import encoder, stored_type, stored_value
from chatgate.core.db import create_engine

BATCH = 2000


def key_file(path: Path) -> Path:
    return path.with_name(path.name + ".keys")


async def back_up(database_url: str, path: Path, *, head: str) -> dict[str, int]:
    """The archive at `path` and the data keys at `<path>.keys`, from one snapshot; rows per
    table. The keys are written first: the archive itself appears last, once all is whole."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            snapshot = await _snapshot(conn)
            revision = await _revision(snapshot)
            if revision != head:
                raise BackupError(
                    "schema_mismatch",
                    f"the database is at revision {revision}, this chatgate at {head}: "
                    "run `chatgate migrate` (or back up with the chatgate that serves it)",
                )
            header = Header(
                schema_revision=revision,
                dialect=conn.dialect.name,
                created_at=datetime.now(UTC).isoformat(),
                part="data",
            )
            keys = await _write(snapshot, key_file(path), _keys_header(header), keys=True)
            rows = await _write(snapshot, path, header, keys=False)
            await snapshot.rollback()
    finally:
        await engine.dispose()
    return rows | keys


def _keys_header(data: Header) -> Header:
    return Header(data.schema_revision, data.dialect, data.created_at, part="keys")


async def _snapshot(conn: AsyncConnection) -> AsyncConnection:
    if conn.dialect.name == "sqlite":
        # A deferred transaction: its snapshot of the WAL is taken by the first read and held
        # until the end, while writers go on appending to the log.
        await conn.exec_driver_sql("BEGIN")
        return conn
    return await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


async def _revision(conn: AsyncConnection) -> str:
    return str((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one())


async def _write(
    conn: AsyncConnection, path: Path, header: Header, *, keys: bool
) -> dict[str, int]:
    tables = [t for t in ordered_tables() if (t.name in KEY_TABLES) == keys]
    writer = ArchiveWriter(path, header)
    try:
        for table in tables:
            await _write_table(conn, writer, table)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


async def _write_table(conn: AsyncConnection, writer: ArchiveWriter, table: Table) -> None:
    columns = list(table.columns)
    encoders = [encoder(stored_type(c)) for c in columns]
    writer.start_table(str(table.name), [str(c.name) for c in columns])
    query = select(*(stored_value(c) for c in columns))
    result = await conn.stream(query.execution_options(yield_per=BATCH))
    async for batch in result.partitions():
        writer.write_rows(
            [[encode(value) for encode, value in zip(encoders, row, strict=True)] for row in batch]
        )
