"""The engine factory's promises on real databases: bound values (message text) never appear
in an error's message, which is what logs and span events record; deleted text does not stay
readable in a SQLite file."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from chatgate.core.db import Database
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    else:
        url = PG_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://")
    database = Database(url)
    try:
        yield database
    finally:
        await database.close()


async def test_a_failed_statement_does_not_carry_its_bound_values(database: Database) -> None:
    secret = f"my card is 6222{secrets.token_hex(6)}"
    table = f"private_{secrets.token_hex(4)}"
    async with database.engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {table} (body TEXT UNIQUE)"))
    try:
        with pytest.raises(IntegrityError) as failure:
            async with database.engine.begin() as conn:
                for _ in range(2):
                    await conn.execute(text(f"INSERT INTO {table} VALUES (:b)"), {"b": secret})
        assert secret not in str(failure.value)
        assert "parameters hidden" in str(failure.value)
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {table}"))


async def test_deleted_text_is_not_left_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "erase.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    marker = f"erase-me-{secrets.token_hex(8)}"
    try:
        async with database.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
            for i in range(3):
                await conn.execute(
                    text("INSERT INTO notes (body) VALUES (:b)"), {"b": f"{marker}-{i}"}
                )
            await conn.execute(text("INSERT INTO notes (body) VALUES ('kept')"))
        async with database.engine.begin() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        async with database.engine.begin() as conn:
            await conn.execute(text("DELETE FROM notes WHERE body LIKE 'erase-me-%'"))
        async with database.engine.begin() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await database.close()
    for file in path.parent.glob("erase.db*"):
        assert marker.encode() not in file.read_bytes(), file.name
