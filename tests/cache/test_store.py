"""The two cache backends, and the cache's rules for what it looks up and stores."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from chatgate.assistants.schemas import Assistant
from chatgate.cache.service import (
    AnswerCache,
    database_scope,
    directive_for,
    directive_from_header,
)
from chatgate.cache.store import AnswerStore, MemoryAnswerStore, RedisAnswerStore
from chatgate.chat.models import Message
from tests.cache.conftest import REDIS_URL


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_entries_expire_and_the_least_recently_used_goes_first() -> None:
    clock = Clock()
    store = MemoryAnswerStore(ttl_seconds=10, max_entries=2, clock=clock)
    await store.put("a", "A")
    await store.put("b", "B")
    assert await store.get("a") == "A"  # now b is the least recently used
    await store.put("c", "C")
    assert await store.get("b") is None
    assert await store.get("a") == "A" and await store.get("c") == "C"
    clock.now += 10
    assert await store.get("a") is None and len(store) == 1


async def test_redis_entries_carry_their_ttl() -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        store = RedisAnswerStore(redis, ttl_seconds=30)
        key = f"chatgate-test:answer:{secrets.token_hex(4)}"
        assert await store.get(key) is None
        await store.put(key, "答案 ✓")
        assert await store.get(key) == "答案 ✓"
        assert 0 < await redis.pttl(key) <= 30_000
        await redis.delete(key)
    finally:
        await redis.aclose()


def assistant(**changes: object) -> Assistant:
    spec = {
        "id": "faq", "name": "FAQ", "provider": "double", "model": "m1",
        "fallback_answer": "Busy, try later.", "version": 3, **changes,
    }  # fmt: skip
    return Assistant.model_validate(spec)


def answer(content: str, **changes: object) -> Message:
    values = {"content": content, "status": "complete", "model": "m1", "error": None, **changes}
    return Message(id=uuid.uuid4(), session_id=uuid.uuid4(), role="assistant", **values)


@pytest.fixture
def cache() -> AnswerCache:
    return AnswerCache(
        store=MemoryAnswerStore(ttl_seconds=60, max_entries=10),
        scope=database_scope("sqlite+aiosqlite:///x.db"),
        own_memory_providers=frozenset({"dify-chat"}),
    )


async def test_only_whole_answers_of_the_assistants_own_engine_are_stored(
    cache: AnswerCache,
) -> None:
    faq = assistant()
    refused: list[tuple[dict[str, Any], str]] = [
        ({"answer": answer("partial", status="interrupted")}, "stopped"),
        ({"answer": answer("x", status="failed", error={"code": "upstream_error"})}, "failed"),
        ({"answer": answer("   ")}, "empty"),
        ({"answer": answer("from elsewhere", model="fallback-model")}, "fallback engine"),
        ({"answer": answer("Busy, try later.")}, "canned fallback"),
        ({"answer": answer("from the next engine", fallback=True)}, "marked as a fallback"),
        ({"answer": answer("ok"), "sent_question": "my phone is [PHONE]"}, "rewritten by a guard"),
        ({"answer": answer("ok"), "provider_id": "private"}, "another engine"),
    ]
    for overrides, why in refused:
        plan = await cache.consult(assistant=faq, provider_id="double", question="q?")
        assert plan is not None and plan.result == "miss", why
        kwargs: dict[str, Any] = {"sent_question": "q?", "provider_id": "double", **overrides}
        await cache.remember(plan, **kwargs)
        again = await cache.consult(assistant=faq, provider_id="double", question="q?")
        assert again is not None and again.result == "miss", why
    plan = await cache.consult(assistant=faq, provider_id="double", question="q?")
    assert plan is not None
    await cache.remember(plan, sent_question="q?", provider_id="double", answer=answer("fine"))
    hit = await cache.consult(assistant=faq, provider_id="double", question="q?")
    assert hit is not None and hit.result == "hit" and hit.text == "fine"


async def test_the_cache_stays_out_where_it_does_not_apply(cache: AnswerCache) -> None:
    faq = assistant()
    for kwargs in [
        {"assistant": assistant(cache_answers=False), "provider_id": "double", "question": "q"},
        {"assistant": faq, "provider_id": "private", "question": "q"},  # a guard's routing
        {"assistant": assistant(provider="dify-chat"), "provider_id": "dify-chat", "question": "q"},
        {"assistant": faq, "provider_id": "double", "question": "?!。"},
        {"assistant": faq, "provider_id": "double", "question": "long " * 1000},
    ]:
        assert await cache.consult(**kwargs) is None  # type: ignore[arg-type]


async def test_keys_name_the_assistant_version_model_and_database(cache: AnswerCache) -> None:
    def key(**changes: object) -> str:
        values = {"assistant_id": "faq", "version": 3, "model": "m1", "sent": "q", **changes}
        return cache.key(**values)  # type: ignore[arg-type]

    assert len({key(), key(version=4), key(model="m2"), key(assistant_id="x"), key(sent="r")}) == 5
    assert key().startswith("chatgate:answers:v2:")
    assert database_scope("postgresql+asyncpg://u:one@db/x") == database_scope(
        "postgresql+asyncpg://u:two@db/x"
    )
    assert database_scope("postgresql+asyncpg://u@db/x") != database_scope(
        "postgresql+asyncpg://u@db/y"
    )


async def test_a_broken_redis_makes_misses_not_failures() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        broken = AnswerCache(store=RedisAnswerStore(redis, ttl_seconds=60), scope="s")
        plan = await broken.consult(assistant=assistant(), provider_id="double", question="q")
        assert plan is not None and plan.result == "miss"
        await broken.remember(plan, sent_question="q", provider_id="double", answer=answer("a"))
    finally:
        await redis.aclose()


def test_cache_control_directives() -> None:
    assert directive_from_header(None) == "use"
    assert directive_from_header("max-age=60") == "use"
    assert directive_from_header("No-Cache") == "refresh"
    assert directive_from_header("max-age=0") == "refresh"
    assert directive_from_header("no-cache, no-store") == "skip"


def test_only_an_admins_refresh_stays_a_refresh() -> None:
    assert directive_for("refresh", admin=True) == "refresh"
    assert directive_for("refresh", admin=False) == "skip"
    for directive in ("use", "skip"):
        assert directive_for(directive, admin=False) == directive


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_an_entry_is_replaced_only_on_purpose(backend: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    store: AnswerStore = (
        RedisAnswerStore(redis, ttl_seconds=30)
        if backend == "redis"
        else MemoryAnswerStore(ttl_seconds=30, max_entries=10)
    )
    key = f"chatgate-test:answer:{secrets.token_hex(4)}"
    # Connected first: the store bounds each call to 0.4 s, which a new connection on a busy
    # machine can take by itself; this test is about what a store keeps, not its deadline.
    await redis.ping()
    try:
        await store.put(key, "first")
        await store.put(key, "second")
        assert await store.get(key) == "first"
        await store.put(key, "third", replace=True)
        assert await store.get(key) == "third"
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_nothing_personal_is_looked_up_or_stored(cache: AnswerCache) -> None:
    faq = assistant()  # its guards are off
    for question in ["call me on 138 1234 5678", "mail a@example.com the invoice"]:
        assert await cache.consult(assistant=faq, provider_id="double", question=question) is None
    plan = await cache.consult(assistant=faq, provider_id="double", question="hotline?")
    assert plan is not None
    personal = answer("Ask Li: 13812345678 or li@example.com")
    await cache.remember(plan, sent_question="hotline?", provider_id="double", answer=personal)
    again = await cache.consult(assistant=faq, provider_id="double", question="hotline?")
    assert again is not None and again.result == "miss"
