"""The runtime opens every part once, offers them by type, and closes them in reverse order;
a start that fails half-way closes what it had opened."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from chatgate.chat.turns import TurnManager
from chatgate.core.config import Settings
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.observability import metrics
from chatgate.providers.registry import ProviderRegistry
from chatgate.runtime import open_runtime
from tests.doubles.server import free_port


async def _settings(tmp_path: Path, **overrides: object) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chatgate.db'}"
    # Alembic runs an event loop of its own: in a thread, apart from the test's.
    await asyncio.to_thread(upgrade_database, url)
    return Settings(database_url=url, **overrides)


def _pool_limit() -> float:
    return metrics.database_pool_limit._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_parts_by_type_and_closed_at_the_end(tmp_path: Path) -> None:
    before = _pool_limit()
    async with open_runtime(await _settings(tmp_path)) as runtime:
        assert runtime.get(TurnManager) is runtime.turns
        assert runtime.get(ProviderRegistry) is runtime.providers
        assert runtime.get(Database) is runtime.database
        assert runtime.find(Redis) is None  # the embedded default has no Redis
        with pytest.raises(LookupError):
            runtime.get(Redis)
        await runtime.database.ping()
        assert _pool_limit() > before
    assert _pool_limit() == before


async def test_a_failed_start_closes_what_it_opened(tmp_path: Path) -> None:
    before = _pool_limit()
    # Nothing listens there: the task queue cannot connect, after the database and the
    # engines were opened.
    settings = await _settings(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisConnectionError):
        async with open_runtime(settings):
            pytest.fail("the runtime opened without its Redis")
    assert _pool_limit() == before
