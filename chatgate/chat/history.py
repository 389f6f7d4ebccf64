"""A page of history (`GET /v1/history/{session_id}`), validated against the rows on every read.

Every read first asks the database for the page's stamps: the id, `updated_at` and status of
each of its messages and of the next older one, owner checked in the same query (on PostgreSQL
hashed there, one row back). Every write to a
message sets its `updated_at` (`Message.updated_at` has `onupdate`, and the answer writer sets it
on each flush and end), so the stamps change whenever the page's JSON would: a message appended,
an answer's text flushed or ended, a message deleted (erasure, retention, a deleted session), a
restore. Hashed, they are the page's `ETag`:

- `If-None-Match` with it: `304`, no body, nothing decrypted or encoded;
- otherwise the JSON this process last built for that ETag (`PageCache`), or the page read,
  opened and encoded now and kept for the next reader.

The check is the database's own state, read by the same query that checks ownership, so it holds
across processes and replicas with no invalidation to send and nothing to go stale when Redis is
down or absent. A page is only ever served to its session's owner (the stamps query is a join on
`sessions.user_id`; an empty answer loads the session for the 404), and one user's cached page is
keyed by their id. Kept pages are plaintext in this process's memory only, never in Redis or on
disk, bounded in bytes (least recently read dropped first), and dropped when their session
answers 404.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from asyncpg import exceptions as asyncpg_errors
from sqlalchemy import Row, Text, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn
from starlette.responses import Response

from chatgate.auth.service import User
from chatgate.chat.models import ChatSession, Message
from chatgate.chat.schemas import MessageOut
from chatgate.chat.service import HISTORY_COLUMNS, get_owned_session
from chatgate.core.db import Database

# The keys of a history message, in the order of HISTORY_COLUMNS.
MESSAGE_FIELDS = tuple(MessageOut.model_fields)
# In the ETag too, so a version that writes the page differently never answers 304 to another's.
_SHAPE = ",".join(MESSAGE_FIELDS).encode()


def _newest(*columns: Any, before: bool) -> Any:
    """The page's rows and the next older one, newest first, the owner checked by a join."""
    query = (
        select(*columns)
        .join(ChatSession, ChatSession.id == Message.session_id)
        .where(
            Message.session_id == bindparam("session_id"),
            ChatSession.user_id == bindparam("user_id"),
        )
        .order_by(Message.id.desc())
        .limit(bindparam("limit"))
    )
    return query.where(Message.id < bindparam("before")) if before else query


def _sql_digest(rows: Any) -> Any:
    """PostgreSQL: the rows' (id, updated_at, status) hashed by the database itself, so that the
    check of a page is one row back, whatever its length ("" for no rows)."""
    space: Any = literal_column("' '")  # inline, not bound: the raw check binds only the params
    bar: Any = literal_column("'|'")
    empty: Any = literal_column("''")
    item = func.concat(
        cast(rows.c.id, Text), space, cast(func.extract("epoch", rows.c.updated_at), Text), space,
        rows.c.status,
    )  # fmt: skip
    # In the rows' order, newest first, as they come from the ordered subquery or CTE: an
    # ORDER BY here sorted them again (a sixth of the check's time in PostgreSQL), and were the
    # order ever to differ, the ETag would only change (a 200 where a 304 could have been).
    joined = func.string_agg(item, bar)
    return func.coalesce(func.md5(joined), empty)


def _pg_stamps_query(before: bool) -> Any:
    rows = _newest(Message.id, Message.updated_at, Message.status, before=before).subquery()
    return select(func.count(), _sql_digest(rows)).select_from(rows)


def _pg_page_query(before: bool) -> Any:
    rows = _newest(*HISTORY_COLUMNS, Message.updated_at, before=before).cte("page")
    digest = select(_sql_digest(rows)).scalar_subquery()
    return select(*(rows.c[c.key] for c in HISTORY_COLUMNS), digest).order_by(rows.c.id.desc())


def _asyncpg_sql(query: Any) -> tuple[str, list[str]]:
    compiled = query.compile(dialect=asyncpg.dialect())
    return str(compiled), list(compiled.positiontup or ())


# Built once, with bound parameters, [without before, with before]. The stamps and the page of
# PostgreSQL carry the digest (the page's in the same statement, so of the same rows); other
# databases' give the rows' (id, updated_at, status), hashed here.
_PG_STAMPS = [_pg_stamps_query(False), _pg_stamps_query(True)]
_PG_PAGE = [_pg_page_query(False), _pg_page_query(True)]
_PG_STAMPS_SQL = [_asyncpg_sql(q) for q in _PG_STAMPS]  # (SQL, parameter names)
_STAMPS = [_newest(Message.id, Message.updated_at, Message.status, before=b) for b in (False, True)]
_PAGE = [_newest(*HISTORY_COLUMNS, Message.updated_at, before=b) for b in (False, True)]

MAX_KEPT_BYTES = 32 * 1024 * 1024  # pages kept per process
MAX_PAGE_BYTES = 1024 * 1024  # a bigger page is built for each read, not kept


@dataclass(frozen=True, slots=True)
class PageKey:
    user_id: str
    session_id: uuid.UUID
    limit: int
    before: uuid.UUID | None


class PageCache:
    """The JSON of recently read pages with their ETags, least recently used dropped first. An
    entry is served only for the ETag just read from the database, so it can never be stale."""

    def __init__(self, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self._pages: OrderedDict[PageKey, tuple[str, bytes]] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0
        self._checks: asyncio.Semaphore | None = None

    def checking(self, engine: AsyncEngine) -> asyncio.Semaphore:
        """At most as many checks at once as the pool keeps connections, less two for the rest:
        past that, the pool opens an overflow connection for one query and closes it again (a
        new PostgreSQL backend each time), which under 1,000 clients cost more than the reads."""
        if self._checks is None:
            size = engine.sync_engine.pool.size()  # type: ignore[attr-defined]
            self._checks = asyncio.Semaphore(max(1, size - 2))
        return self._checks

    def get(self, key: PageKey, etag: str) -> bytes | None:
        kept = self._pages.get(key)
        if kept is None or kept[0] != etag:
            return None
        self._pages.move_to_end(key)
        return kept[1]

    def put(self, key: PageKey, etag: str, body: bytes) -> None:
        self.drop(key)
        if len(body) > MAX_PAGE_BYTES:
            return
        self._pages[key] = (etag, body)
        self._bytes += len(body)
        while self._bytes > self._max_bytes:
            _, (_, dropped) = self._pages.popitem(last=False)
            self._bytes -= len(dropped)

    def drop(self, key: PageKey) -> None:
        kept = self._pages.pop(key, None)
        if kept is not None:
            self._bytes -= len(kept[1])

    def forget_user(self, user_id: str) -> None:
        """Drops what is kept of this user: for an erasure notice (an erased user's pages are
        never served, their session being gone, but need not wait for eviction)."""
        for key in [k for k in self._pages if k.user_id == user_id]:
            self.drop(key)

    def __len__(self) -> int:
        return len(self._pages)


@dataclass(frozen=True, slots=True)
class HistoryRead:
    etag: str
    body: bytes | None  # None: not modified (the client's copy is current)


async def read_page(
    database: Database,
    *,
    user: User,
    session_id: uuid.UUID,
    limit: int,
    before: uuid.UUID | None,
    if_none_match: str | None,
    pages: PageCache,
) -> HistoryRead:
    """The caller's newest `limit` messages before `before` as API.md's page JSON, oldest first,
    or not modified. One round trip when the client's copy or this process's is current, two
    when the page has changed; NotFound for a session that is missing or another user's."""
    params: dict[str, Any] = {"session_id": session_id, "user_id": user.id, "limit": limit + 1}
    if before is not None:
        params["before"] = before
    older = before is not None
    key = PageKey(user.id, session_id, limit, before)
    postgres = database.engine.dialect.name == "postgresql"
    if postgres:
        async with pages.checking(database.engine):
            count, digest = await _pg_stamps(database.engine, params, older)
        etag = page_etag(session_id, digest)
        if count and if_none_match is not None and etag_matches(if_none_match, etag):
            return HistoryRead(etag, None)
        if count and (body := pages.get(key, etag)) is not None:
            return HistoryRead(etag, body)
    async with database.session() as db:
        # Autocommit: no BEGIN or ROLLBACK around the reads.
        conn = await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        if not postgres:
            stamps = (await conn.execute(_STAMPS[older], params)).all()
            count, digest = len(stamps), rows_digest(stamps)
            etag = page_etag(session_id, digest)
        if not count:
            pages.drop(key)
            await get_owned_session(db, user=user, session_id=session_id)  # 404 if not theirs
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return HistoryRead(etag, None)
        if (body := pages.get(key, etag)) is not None:
            return HistoryRead(etag, body)
        # With the digest of the rows read now: a write since the stamps shows in both or neither.
        rows = (await conn.execute((_PG_PAGE if postgres else _PAGE)[older], params)).all()
    if postgres:
        digest = rows[0][-1] if rows else ""
    else:
        digest = rows_digest([(r.id, r.updated_at, r.status) for r in rows])
    etag = page_etag(session_id, digest)
    body = page_json(session_id, rows, limit)
    pages.put(key, etag, body)
    return HistoryRead(etag, body)


async def _pg_stamps(engine: AsyncEngine, params: dict[str, Any], older: bool) -> tuple[int, str]:
    """The PostgreSQL check of a page, straight through asyncpg: a connection of the engine's
    pool and one prepared statement, none of SQLAlchemy's connection, statement, session and
    result work (which was most of a 304's CPU time)."""
    sql, names = _PG_STAMPS_SQL[older]
    pool = engine.sync_engine.pool
    # Checked out and in as any of the engine's (its checks of dead connections included); the
    # greenlet is SQLAlchemy's way of running the pool's own awaits.
    pooled = await greenlet_spawn(pool.connect)
    try:
        driver: Any = pooled.driver_connection
        row = await driver.fetchrow(sql, *(params[n] for n in names))
    except _CONNECTION_LOST as exc:
        # As SQLAlchemy would: the connection leaves the pool, the caller gets a 503.
        pooled.invalidate(exc)
        raise OperationalError(sql, None, exc) from exc
    finally:
        await greenlet_spawn(pooled.close)
    return row[0], row[1]


# asyncpg's own errors for a connection that is gone or a server that is going away (class 08:
# connection exceptions, class 57: operator intervention, e.g. a shutdown).
_CONNECTION_LOST = (
    asyncpg_errors.InterfaceError,
    asyncpg_errors.PostgresConnectionError,
    asyncpg_errors.OperatorInterventionError,
    OSError,
)


# Browsers keep the page but ask again each time; no shared cache keeps it (it is one user's).
CACHE_CONTROL = "private, no-cache"


def page_response(read: HistoryRead) -> Response:
    headers = {"ETag": read.etag, "Cache-Control": CACHE_CONTROL}
    if read.body is None:
        return Response(status_code=304, headers=headers)
    return Response(read.body, headers=headers, media_type="application/json")


def rows_digest(stamps: Sequence[Sequence[Any]]) -> str:
    """What PostgreSQL's digest is, for the other databases: (id, updated_at, status) of the rows
    read, the one past the page included (so whether there are older ones too); "" for none."""
    if not stamps:
        return ""
    joined = "|".join(f"{i} {t.timestamp()} {s}" for i, t, s in stamps)
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()


def page_etag(session_id: uuid.UUID, digest: str) -> str:
    """A strong ETag of the page: its rows' digest, the session and the JSON's shape."""
    tag = hashlib.blake2b(_SHAPE, digest_size=16)
    tag.update(session_id.bytes)
    tag.update(digest.encode())
    return f'"{tag.hexdigest()}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match takes: `*`, or any listed tag, W/ or not."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def page_json(session_id: uuid.UUID, rows: Sequence[Row[Any]], limit: int) -> bytes:
    """API.md's page from rows of the newest first (`limit` + 1 read), without a MessageOut per
    message: the JSON equals HistoryPage's."""
    page = list(rows[:limit])
    page.reverse()
    has_more = len(rows) > limit
    body = {
        "session_id": str(session_id),
        "data": [_message_json(row) for row in page],
        "has_more": has_more,
        "next_before": str(page[0].id) if has_more else None,
    }
    # OPT_UTC_Z writes UTC times as pydantic does ("...Z"), so the JSON equals MessageOut's.
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


def _message_json(row: Row[Any]) -> dict[str, Any]:
    item = dict(zip(MESSAGE_FIELDS, row, strict=False))  # the last column, updated_at, is not
    item["id"] = str(item["id"])
    item["session_id"] = str(item["session_id"])
    return item
