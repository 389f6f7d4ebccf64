"""The database: one async engine per process, built at start-up, SQLite or PostgreSQL by URL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _prepare_sqlite(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "busy_timeout=5000",
        # Deleted rows are overwritten, not left readable in free pages and the WAL: erasing a
        # person's messages must erase their text.
        "secure_delete=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (usage, error, provider state) through orjson: decoding them with the standard
# library was a tenth of a history page's CPU (docs/benchmarks.md, "Chat history reads").
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


# Bound values (message text, keys) never reach logs or span events through a statement's
# error message; the statement itself still does.
PRIVATE = {"hide_parameters": True}
# Every wait on PostgreSQL is bounded: opening a connection, and each statement (a stalled
# server must fail a request, not hold it for good).
PG_CONNECT_SECONDS = 5.0
PG_STATEMENT_SECONDS = 30.0


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        _prepare_sqlite(url)
        engine = create_async_engine(url, **PRIVATE, **JSON_CODEC)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800,
        pool_timeout=PG_CONNECT_SECONDS * 2,
        connect_args={"timeout": PG_CONNECT_SECONDS, "command_timeout": PG_STATEMENT_SECONDS},
        **PRIVATE, **JSON_CODEC,
    )  # fmt: skip
    _replace_dead_connections(engine)
    return engine


# A pooled connection idle longer than this is pinged before use: one the network dropped
# silently (a NAT or a load balancer's idle timeout) is replaced, not handed to a request.
PING_AFTER_IDLE_SECONDS = 30.0


def _replace_dead_connections(engine: AsyncEngine) -> None:
    """A connection the server closed (a restart, a failover) is replaced when it is checked
    out, instead of failing the request that drew it. asyncpg knows a closed socket without a
    round trip, so only a connection idle for long is pinged: `pool_pre_ping` pinged on every
    checkout, a quarter of a millisecond on every history read (docs/benchmarks.md)."""
    dialect = engine.dialect

    def check(dbapi_connection: Any, record: Any, _: Any) -> None:
        driver = getattr(dbapi_connection, "_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the server closed this connection")
        idle_since = record.info.get("checked_in_at")
        if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError("the connection did not answer a ping") from exc

    def note_checkin(_: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    event.listen(engine.sync_engine, "checkout", check)
    event.listen(engine.sync_engine, "checkin", note_checkin)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


async def forget_deleted(db: AsyncSession) -> None:
    """After a deletion is committed: on SQLite, folds the write-ahead log into the file and
    empties it, so the deleted text (zeroed in the file by `secure_delete`) does not live on
    in old log frames. Best effort: readers in progress may keep part of the log until the
    next checkpoint. PostgreSQL's own vacuum is the counterpart there."""
    if db.get_bind().dialect.name == "sqlite":
        await db.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
