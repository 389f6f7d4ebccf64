"""Database faults mid-answer: SQLite locked by another connection, PostgreSQL refusing
connections or restarting (through a TCP proxy that refuses and cuts them). For each: the
stream ends with `message_end` or `error` within a bound, the answer's text is stored with its
final status, and the session takes the next message."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from chatgate.chat.answers import SAVE_WITHIN
from tests.conftest import (
    PG_ADMIN_URL,
    Caller,
    Double,
    _create_pg_database,
    _drop_pg_database,
    open_caller,
    parse_sse,
    remote_only_settings,
    serve_chatgate,
)
from tests.faults.tcp_proxy import TcpProxy

# Every wait in these tests is bounded: a stream that does not end fails the test, not hangs it.
STREAM_BOUND = SAVE_WITHIN + 15


@asynccontextmanager
async def sqlite_chatgate(tmp_path: Path, double: Double) -> AsyncIterator[tuple[str, Path]]:
    path = tmp_path / "chatgate.db"
    settings = remote_only_settings(f"sqlite+aiosqlite:///{path}", double.url)
    async with serve_chatgate(settings) as url:
        yield url, path


@asynccontextmanager
async def proxied_postgres(double: Double) -> AsyncIterator[tuple[str, TcpProxy]]:
    """chatgate on a database of its own, reached through a proxy the test controls."""
    name = f"chatgate_fault_{secrets.token_hex(4)}"
    await _create_pg_database(name)
    host_port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    proxy = TcpProxy(target_host=host, target_port=int(port or 5432))
    await proxy.start()
    user = PG_ADMIN_URL.split("//", 1)[1].split("@", 1)[0]
    url = f"postgresql+asyncpg://{user}@127.0.0.1:{proxy.port}/{name}"
    try:
        async with serve_chatgate(remote_only_settings(url, double.url)) as served:
            yield served, proxy
    finally:
        await proxy.close()
        await _drop_pg_database(name)


async def stream_answer(
    caller: Caller, session_id: str, content: str, on_first_delta: Callable[[], Awaitable[None]]
) -> list[dict[str, Any]]:
    """Sends a streaming message, runs `on_first_delta` once text flows, and reads the stream
    to its end, failing if that takes longer than STREAM_BOUND."""
    raw = ""
    async with asyncio.timeout(STREAM_BOUND):
        async with caller.http.stream(
            "POST", f"/v1/sessions/{session_id}/messages",
            json={"content": content, "response_mode": "streaming"},
        ) as response:  # fmt: skip
            assert response.status_code == 200, await response.aread()
            fired = False
            async for text in response.aiter_text():
                raw += text
                if not fired and "event: delta" in raw:
                    fired = True
                    await on_first_delta()
    return parse_sse(raw)


async def answer_row(caller: Caller, session_id: str, *, settled: bool) -> dict[str, Any]:
    """The session's last answer as stored; with `settled`, waits (bounded) until it ends."""
    deadline = time.monotonic() + STREAM_BOUND
    while True:
        page = await caller.history(session_id)
        answer: dict[str, Any] = page["data"][-1]
        if not settled or answer["status"] != "streaming" or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.2)


async def assert_session_usable(caller: Caller, session_id: str) -> None:
    reply = await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": "still there?"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["content"] == "echo: still there?"


def lock_sqlite(path: Path, seconds: float, locked: threading.Event) -> None:
    """Another connection holding the database's write lock, as a backup tool or a stuck
    process would."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def start_lock(path: Path, seconds: float) -> asyncio.Future[None]:
    locked = threading.Event()
    holder = asyncio.ensure_future(asyncio.to_thread(lock_sqlite, path, seconds, locked))
    assert await asyncio.to_thread(locked.wait, 10), "could not lock the database"
    return holder


async def test_sqlite_locked_mid_answer_ends_the_stream_once_saved(
    tmp_path: Path, openai_double: Double
) -> None:
    """The lock outlasts SQLite's own 5 s wait but not the save's retries: the answer ends
    `complete`, in the stream and in its row."""
    holders: list[asyncio.Future[None]] = []

    async def lock() -> None:
        holders.append(await start_lock(path, 8))

    async with sqlite_chatgate(tmp_path, openai_double) as (url, path), open_caller(url) as alice:
        session = await alice.new_session("echo")
        events = await stream_answer(alice, session["id"], "[[slow 8 0.25]]", lock)
        await asyncio.wait_for(holders[0], 15)
        assert events[-1]["event"] == "message_end", events[-1]
        text = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
        assert events[-1]["data"]["message"]["content"] == text == "w0 w1 w2 w3 w4 w5 w6 w7 "
        stored = await answer_row(alice, session["id"], settled=False)
        assert (stored["status"], stored["content"]) == ("complete", text)
        await assert_session_usable(alice, session["id"])


async def test_sqlite_locked_past_the_window_ends_the_stream_and_saves_later(
    tmp_path: Path, openai_double: Double
) -> None:
    """Locked longer than a stream waits: the stream ends with `answer_not_saved` (its text in
    the event), and the answer is saved as soon as the lock goes, freeing the session."""
    holders: list[asyncio.Future[None]] = []

    async def lock() -> None:
        holders.append(await start_lock(path, SAVE_WITHIN + 4))

    async with sqlite_chatgate(tmp_path, openai_double) as (url, path), open_caller(url) as alice:
        session = await alice.new_session("echo")
        started = time.monotonic()
        events = await stream_answer(alice, session["id"], "[[slow 4 0.25]]", lock)
        assert time.monotonic() - started < SAVE_WITHIN + 8
        end = events[-1]
        assert end["event"] == "error", end
        assert end["data"]["error"]["code"] == "answer_not_saved"
        assert end["data"]["message"]["content"] == "w0 w1 w2 w3 "
        await asyncio.wait_for(holders[0], 15)
        stored = await answer_row(alice, session["id"], settled=True)
        assert (stored["status"], stored["content"]) == ("complete", "w0 w1 w2 w3 ")
        await assert_session_usable(alice, session["id"])


async def test_postgres_refusing_mid_answer_ends_the_stream_once_saved(
    openai_double: Double,
) -> None:
    async with proxied_postgres(openai_double) as (url, proxy), open_caller(url) as alice:
        session = await alice.new_session("echo")

        async def blink() -> None:
            proxy.refuse()
            asyncio.get_running_loop().call_later(4, proxy.restore)

        events = await stream_answer(alice, session["id"], "[[slow 6 0.25]]", blink)
        assert events[-1]["event"] == "message_end", events[-1]
        stored = await answer_row(alice, session["id"], settled=False)
        assert (stored["status"], stored["content"]) == ("complete", "w0 w1 w2 w3 w4 w5 ")
        await assert_session_usable(alice, session["id"])


async def test_the_first_request_after_a_postgres_restart_succeeds(
    openai_double: Double,
) -> None:
    """A restart closes every pooled connection; the next request gets a fresh one instead
    of failing on a dead one (pool_pre_ping)."""
    async with proxied_postgres(openai_double) as (url, proxy), open_caller(url) as alice:
        session = await alice.new_session("echo")
        # Several connections in the pool, all to be cut.
        await asyncio.gather(*(alice.history(session["id"]) for _ in range(4)))
        proxy.refuse()
        await asyncio.sleep(0.5)
        proxy.restore()
        for _ in range(4):
            page = await alice.http.get(f"/v1/history/{session['id']}")
            assert page.status_code == 200, page.text
        await assert_session_usable(alice, session["id"])


async def test_a_database_that_is_down_is_a_503_with_a_code_never_a_500(
    openai_double: Double,
) -> None:
    async with proxied_postgres(openai_double) as (url, proxy), open_caller(url) as alice:
        session = await alice.new_session("echo")
        proxy.refuse()
        try:
            started = time.monotonic()
            for path in ("/v1/sessions", f"/v1/history/{session['id']}"):
                response = await alice.http.get(path)
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "database_unavailable"
                assert response.headers["Retry-After"]
            assert time.monotonic() - started < 15
        finally:
            proxy.restore()
        assert (await alice.http.get("/v1/sessions")).status_code == 200


@pytest.mark.parametrize("directive", ["[[die-after 3]]"])
async def test_an_engine_dying_mid_stream_keeps_the_text_and_frees_the_session(
    tmp_path: Path, openai_double: Double, directive: str
) -> None:
    async def nothing() -> None:
        return None

    async with sqlite_chatgate(tmp_path, openai_double) as (url, _), open_caller(url) as alice:
        session = await alice.new_session("echo")
        events = await stream_answer(alice, session["id"], directive, nothing)
        assert events[-1]["event"] == "error", events[-1]
        stored = await answer_row(alice, session["id"], settled=False)
        assert stored["status"] == "failed"
        assert stored["content"].startswith("w0 ") and stored["content"] == events[-1]["data"][
            "message"]["content"]  # fmt: skip
        await assert_session_usable(alice, session["id"])
