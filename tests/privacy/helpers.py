"""What the erasure and retention suites share: an admin client, a turn, and what a database
and a Redis hold of a user."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select

from chatgate.chat.models import ChatSession, Message
from tests.conftest import Caller, make_token, read_database

REDIS_URL = "redis://127.0.0.1:6379/0"


@asynccontextmanager
async def admin_client(
    url: str, admin_id: str = "privacy-admin"
) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token(admin_id, admin=True)}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        yield client


async def send(
    caller: Caller, session_id: str, content: str, mode: str = "blocking"
) -> dict[str, Any]:
    response = await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, "response_mode": mode}
    )
    assert response.status_code in (200, 202), response.text
    return response.json()  # type: ignore[no-any-return]


async def rows_of(database_url: str, user_id: str) -> tuple[int, int]:
    """The user's sessions and messages, as the database holds them."""
    async with read_database(database_url) as db:
        sessions = await db.scalar(
            select(func.count()).select_from(ChatSession).where(ChatSession.user_id == user_id)
        )
        messages = await db.scalar(
            select(func.count())
            .select_from(Message)
            .join(ChatSession, ChatSession.id == Message.session_id)
            .where(ChatSession.user_id == user_id)
        )
    return int(sessions or 0), int(messages or 0)


async def messages_in(database_url: str, session_ids: list[str]) -> int:
    """Messages left in these sessions, whoever's they are (none once they are erased)."""
    ids = [uuid.UUID(i) for i in session_ids]
    async with read_database(database_url) as db:
        count = await db.scalar(
            select(func.count()).select_from(Message).where(Message.session_id.in_(ids))
        )
    return int(count or 0)


async def redis_dump(url: str = REDIS_URL) -> dict[str, bytes]:
    """Every key of the Redis with its value as bytes, whatever its type."""
    redis = Redis.from_url(url)
    dump: dict[str, bytes] = {}
    try:
        async for key in redis.scan_iter(count=1000):
            dump[key.decode()] = repr(await _value(redis, key)).encode()
    finally:
        await redis.aclose()
    return dump


async def _value(redis: Redis, key: bytes) -> Any:
    kind = (await redis.type(key)).decode()
    if kind == "string":
        return await redis.get(key)
    if kind == "hash":
        return await redis.hgetall(key)
    if kind == "set":
        return await redis.smembers(key)
    if kind == "zset":
        return await redis.zrange(key, 0, -1)
    if kind == "list":
        return await redis.lrange(key, 0, -1)
    if kind == "stream":
        return await redis.xrange(key)
    return kind
