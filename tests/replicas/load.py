"""Clients of the replicas through the balancer: readers that count every failed read, and
streaming answers read event by event, cut, and resumed (the tests and bench/replicas.py).

Rate limits are per user and shared by every replica, so the read load spreads over a pool of
users, each kept under its limit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

READ_TIMEOUT = 15.0


@dataclass(frozen=True)
class Tokens:
    """JWTs for any user, signed as the replicas expect."""

    secret: str
    audience: str

    def headers(self, user_id: str, *, admin: bool = False) -> dict[str, str]:
        claims: dict[str, Any] = {"sub": user_id, "aud": self.audience,
                                  "exp": int(time.time()) + 3600}  # fmt: skip
        if admin:
            claims["role"] = "admin"
        return {"Authorization": f"Bearer {jwt.encode(claims, self.secret, algorithm='HS256')}"}

    def new_user(self, prefix: str = "user") -> tuple[str, dict[str, str]]:
        user_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
        return user_id, self.headers(user_id)


@asynccontextmanager
async def client(url: str, headers: dict[str, str] | None = None,
                 connections: int = 20) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=READ_TIMEOUT, limits=limits
    ) as http:
        yield http


async def new_session(http: httpx.AsyncClient, headers: dict[str, str], assistant: str) -> str:
    made = await http.post("/v1/sessions", json={"assistant_id": assistant}, headers=headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


# --- readers ---------------------------------------------------------------------------------


@dataclass
class Reader:
    user_id: str
    headers: dict[str, str]
    session_id: str
    reads: int = 0


async def make_readers(
    http: httpx.AsyncClient, tokens: Tokens, count: int, *, assistant: str = "echo"
) -> list[Reader]:
    """`count` users, each with a session holding one question and its answer."""

    async def one() -> Reader:
        user_id, headers = tokens.new_user("reader")
        session_id = await new_session(http, headers, assistant)
        answered = await http.post(
            f"/v1/sessions/{session_id}/messages", json={"content": "hello"}, headers=headers
        )
        assert answered.status_code == 200, answered.text
        return Reader(user_id, headers, session_id)

    return list(await asyncio.gather(*(one() for _ in range(count))))


@dataclass
class ReadResult:
    reads: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def per_second(self) -> float:
        return self.reads / max((self.ended or time.monotonic()) - self.started, 1e-9)


async def read_load(
    http: httpx.AsyncClient,
    readers: list[Reader],
    stop: asyncio.Event,
    *,
    concurrency: int = 6,
    per_user: int = 40,
    per_second: float | None = None,
) -> ReadResult:
    """GETs through the balancer until `stop` is set: a reader's history, its session, its list
    of sessions, each user at most `per_user` times, at most `per_second` in all. Any answer but
    a 200 that reads back what was stored, or no answer at all, is a failed read."""
    result = ReadResult()
    every = concurrency / per_second if per_second else 0.0  # seconds between one loop's reads
    pool = itertools.cycle(readers)
    paths = itertools.cycle(("history", "session", "sessions"))

    def next_reader() -> Reader:
        for _ in range(len(readers)):
            reader = next(pool)
            if reader.reads < per_user:
                reader.reads += 1
                return reader
        raise RuntimeError(f"all {len(readers)} readers used {per_user} times: make more")

    async def loop() -> None:
        while not stop.is_set():
            reader, path = next_reader(), next(paths)
            url = {
                "history": f"/v1/history/{reader.session_id}",
                "session": f"/v1/sessions/{reader.session_id}",
                "sessions": "/v1/sessions",
            }[path]
            began = time.monotonic()
            try:
                response = await http.get(url, headers=reader.headers)
            except httpx.HTTPError as exc:
                result.failures.append(f"GET {path}: {type(exc).__name__}: {exc}")
                continue
            result.latencies.append(time.monotonic() - began)
            result.reads += 1
            if response.status_code != 200 or not _reads_back(path, response.json(), reader):
                result.failures.append(f"GET {path}: {response.status_code} {response.text[:200]}")
            if every:
                await asyncio.sleep(max(0.0, began + every - time.monotonic()))

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    result.ended = time.monotonic()
    return result


def _reads_back(path: str, body: dict[str, Any], reader: Reader) -> bool:
    if path == "history":
        return [m["role"] for m in body["data"]][:2] == ["user", "assistant"]
    if path == "session":
        return bool(body["id"] == reader.session_id)
    return reader.session_id in {s["id"] for s in body["data"]}


# --- streams ---------------------------------------------------------------------------------


@dataclass
class Stream:
    """What a client received of one streaming answer, in order, and how its reading ended."""

    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    cut: str | None = None  # the transport error that ended the reading, if one did
    first_delta: float | None = None  # seconds from the request to the first delta
    ended_at: float | None = None  # when its end arrived (time.monotonic)

    @property
    def message_id(self) -> str | None:
        for event in self.events:
            if event["event"] == "message_start":
                return str(event["data"]["message_id"])
        return None

    @property
    def last_id(self) -> int:
        return int(self.events[-1]["id"]) if self.events else 0

    @property
    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]

    @property
    def end(self) -> dict[str, Any] | None:
        """The message_end or error event, if the stream got that far."""
        if self.events and self.events[-1]["event"] in ("message_end", "error"):
            return self.events[-1]
        return None

    @property
    def deltas(self) -> int:
        return sum(e["event"] == "delta" for e in self.events)

    def text(self) -> str:
        parts: list[str] = []
        for event in self.events:
            if event["event"] == "delta":
                if event["data"].get("replace"):
                    parts = []
                parts.append(event["data"]["text"])
        return "".join(parts)

    def joined(self, resumed: Stream) -> Stream:
        """This stream's events followed by those a resumption of it received."""
        return Stream(self.session_id, [*self.events, *resumed.events], resumed.cut)


async def read_events(
    response: httpx.Response, stream: Stream, *, leave_after: int | None = None,
    deltas_seen: asyncio.Event | None = None, began: float | None = None,
) -> None:  # fmt: skip
    """Reads an event stream into `stream` until its end, a cut, or `leave_after` deltas (the
    client then goes away). `deltas_seen` is set at the first delta."""
    record: dict[str, Any] = {}
    try:
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue  # a comment: the keep-alive of a quiet stream
            if line:
                key, _, value = line.partition(": ")
                record[key] = json.loads(value) if key == "data" else value
                continue
            if not record:
                continue
            stream.events.append(record)
            record = {}
            if stream.events[-1]["event"] == "delta":
                if stream.first_delta is None and began is not None:
                    stream.first_delta = time.monotonic() - began
                if deltas_seen is not None:
                    deltas_seen.set()
                if leave_after is not None and stream.deltas >= leave_after:
                    return
            if stream.end is not None:
                stream.ended_at = time.monotonic()
                return
    except httpx.HTTPError as exc:
        stream.cut = f"{type(exc).__name__}: {exc}"


async def stream_answer(
    http: httpx.AsyncClient, session_id: str, content: str, *,
    headers: dict[str, str] | None = None, leave_after: int | None = None,
    deltas_seen: asyncio.Event | None = None,
) -> Stream:  # fmt: skip
    """Sends `content` in streaming mode and reads the answer's events."""
    stream = Stream(session_id)
    began = time.monotonic()
    try:
        async with http.stream(
            "POST", f"/v1/sessions/{session_id}/messages",
            json={"content": content, "response_mode": "streaming"}, headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, read=60),
        ) as response:  # fmt: skip
            if response.status_code != 200:
                await response.aread()
                stream.cut = f"status {response.status_code}: {response.text[:200]}"
                return stream
            await read_events(
                response, stream, leave_after=leave_after, deltas_seen=deltas_seen, began=began
            )
    except httpx.HTTPError as exc:
        stream.cut = f"{type(exc).__name__}: {exc}"
    return stream


async def resume_answer(
    http: httpx.AsyncClient, session_id: str, message_id: str, *, after: int,
    headers: dict[str, str] | None = None, by_query: bool = False,
    leave_after: int | None = None,
) -> Stream:  # fmt: skip
    """`GET …/events` after event `after` (the Last-Event-ID header, or `?after=`)."""
    path = f"/v1/sessions/{session_id}/messages/{message_id}/events"
    return await read_after(
        http, path, Stream(session_id), after=after, headers=headers, by_query=by_query,
        leave_after=leave_after,
    )  # fmt: skip


async def read_after(
    http: httpx.AsyncClient, path: str, stream: Stream, *, after: int,
    headers: dict[str, str] | None = None, by_query: bool = False,
    leave_after: int | None = None,
) -> Stream:  # fmt: skip
    """The events of an answer's `path` (its session's or its task's) after event `after`."""
    params = {"after": str(after)} if by_query else None
    last = {} if by_query else {"Last-Event-ID": str(after)}
    try:
        async with http.stream(
            "GET", path, params=params, headers={**(headers or {}), **last},
            timeout=httpx.Timeout(READ_TIMEOUT, read=60),
        ) as response:  # fmt: skip
            if response.status_code != 200:
                await response.aread()
                stream.cut = f"status {response.status_code}: {response.text[:200]}"
                return stream
            await read_events(response, stream, leave_after=leave_after)
    except httpx.HTTPError as exc:
        stream.cut = f"{type(exc).__name__}: {exc}"
    return stream


def slow(words: int, seconds: float) -> str:
    """A question the engine double answers with `words` words ("w0 w1 …"), `seconds` apart;
    never asked before, so no answer cache holds it."""
    return f"[[slow {words} {seconds}]] ({uuid.uuid4().hex[:12]})"


def words_of(text: str) -> list[str]:
    return text.split()


def in_order(words: list[str]) -> bool:
    """The double's words, from w0 on, none missing nor repeated."""
    return words == [f"w{i}" for i in range(len(words))]
