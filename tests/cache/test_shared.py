"""The answer cache across processes: Redis shares entries (and version bumps) between every
chatgate of one database; the in-process backend keeps them to its own process. Entries expire
with their TTL on both."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from chatgate.core.config import Settings
from chatgate.core.policies import CacheSettings
from tests.cache.conftest import REDIS_URL, EngineCalls, new_assistant, qa, unique
from tests.conftest import Double, make_token, open_caller, remote_only_settings, serve_chatgate


def settings(database_url: str, double: Double, *, redis: bool, **cache: Any) -> Settings:
    extra: dict[str, Any] = {"cache": CacheSettings(**cache)}
    if redis:
        extra.update(redis_url=REDIS_URL, task_queue=f"chatgate-test:{secrets.token_hex(4)}")
    return remote_only_settings(database_url, double.url, **extra)


async def test_two_processes_share_entries_and_edits_through_redis(
    database_url: str, openai_double: Double, engine: EngineCalls
) -> None:
    shared = settings(database_url, openai_double, redis=True)
    admin = {"Authorization": f"Bearer {make_token('cache-root', admin=True)}"}
    async with (
        serve_chatgate(shared) as first,
        serve_chatgate(shared) as second,
        open_caller(first) as on_first,
        open_caller(second) as on_second,
        httpx.AsyncClient(base_url=first, headers=admin) as admin_on_first,
    ):
        assistant_id = await new_assistant(admin_on_first)
        question = unique("How long does delivery take?")
        assert (await qa(on_first, question, assistant_id=assistant_id)).headers[
            "x-cache"
        ] == "miss"
        hit = await qa(on_second, question, assistant_id=assistant_id)
        assert hit.headers["x-cache"] == "hit" and hit.json()["cached"] is True
        assert engine.count == 1

        # An edit made through one process is a miss on the other at once.
        edited = await admin_on_first.patch(
            f"/v1/admin/assistants/{assistant_id}", json={"system_prompt": "Answer FAQs, v2."}
        )
        assert edited.status_code == 200, edited.text
        after = await qa(on_second, question, assistant_id=assistant_id)
        assert after.headers["x-cache"] == "miss"
        assert engine.count == 2 and engine.last_sent()[0] == "Answer FAQs, v2."
        again = await qa(on_first, question, assistant_id=assistant_id)
        assert again.headers["x-cache"] == "hit"
        assert engine.count == 2


async def test_without_redis_each_process_keeps_its_own_entries(
    database_url: str, openai_double: Double, engine: EngineCalls
) -> None:
    alone = settings(database_url, openai_double, redis=False)
    async with (
        serve_chatgate(alone) as first,
        serve_chatgate(alone) as second,
        open_caller(first) as on_first,
        open_caller(second) as on_second,
    ):
        question = unique("Is gift wrapping available?")
        await qa(on_first, question)
        assert (await qa(on_first, question)).headers["x-cache"] == "hit"
        assert (await qa(on_second, question)).headers["x-cache"] == "miss"
        assert engine.count == 2


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_entries_expire_after_their_ttl(
    database_url: str, openai_double: Double, engine: EngineCalls, backend: str
) -> None:
    short = settings(database_url, openai_double, redis=backend == "redis", ttl_seconds=1)
    async with serve_chatgate(short) as url, open_caller(url) as caller:
        question = unique("When do you restock?")
        await qa(caller, question)
        assert (await qa(caller, question)).headers["x-cache"] == "hit"
        await asyncio.sleep(1.2)
        assert (await qa(caller, question)).headers["x-cache"] == "miss"
        assert engine.count == 2


async def test_a_disabled_cache_leaves_every_question_to_the_engine(
    database_url: str, openai_double: Double, engine: EngineCalls
) -> None:
    off = settings(database_url, openai_double, redis=False, enabled=False)
    async with serve_chatgate(off) as url, open_caller(url) as caller:
        question = unique("Do you have a loyalty card?")
        for _ in range(2):
            response = await qa(caller, question)
            assert "x-cache" not in response.headers and response.json()["cached"] is False
        assert engine.count == 2
