"""What Redis holds of a conversation is sealed too: a cached answer and a queued job (no worker
runs, so the job stays) hold none of the text; the cache still answers, sealed entries open."""

from __future__ import annotations

import secrets
from typing import Any

import redis.asyncio as aioredis

from tests.cache.conftest import REDIS_URL, first_message, qa
from tests.conftest import Double, open_caller, remote_only_settings, serve_chatgate


async def everything_in_redis() -> bytes:
    """Every key and value of the Redis database, as one blob to search."""
    client: Any = aioredis.from_url(REDIS_URL)
    parts: list[bytes] = []
    try:
        async for key in client.scan_iter(count=1000):
            parts.append(key)
            kind = (await client.type(key)).decode()
            if kind == "string":
                parts.append(await client.get(key) or b"")
            elif kind == "hash":
                parts.extend(b"%s=%s" % kv for kv in (await client.hgetall(key)).items())
            elif kind == "list":
                parts.extend(await client.lrange(key, 0, -1))
            elif kind == "set":
                parts.extend(await client.smembers(key))
            elif kind == "zset":
                parts.extend(await client.zrange(key, 0, -1))
            elif kind == "stream":
                for _, fields in await client.xrange(key):
                    parts.extend(b"%s=%s" % kv for kv in fields.items())
    finally:
        await client.aclose()
    return b"\n".join(parts)


async def test_cached_answers_and_queued_jobs_hold_no_text(
    database_url: str, openai_double: Double
) -> None:
    marker = f"sealed-{secrets.token_hex(6)}"
    settings = remote_only_settings(
        database_url, openai_double.url, redis_url=REDIS_URL,
        task_queue=f"chatgate-test:{secrets.token_hex(4)}",
    )  # fmt: skip
    async with serve_chatgate(settings) as url, open_caller(url) as caller:
        question = f"Where is parcel {marker}?"
        assert (await qa(caller, question)).headers["x-cache"] == "miss"
        hit = await qa(caller, question)
        assert hit.headers["x-cache"] == "hit" and marker in hit.json()["answer"]
        _, queued = await first_message(caller, f"Queued {marker}", mode="async")
        assert queued.status_code == 202, queued.text

        stored = await everything_in_redis()
    assert b"chatgate:answers" in stored and b"arq:job:" in stored  # both were written
    assert marker.encode() not in stored
