"""The ledger on a real database (SQLite and PostgreSQL): rows written in batches off the request
path, nothing lost when a write fails and the database comes back, what is left written at
close, an erased user's rows pseudonymized."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event, select, text

from chatgate.core.config import PriceConfig
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.core.time import utcnow
from chatgate.usage.ledger import ERASED, Ledger
from chatgate.usage.models import UsageRecord
from chatgate.usage.prices import Prices
from tests.conftest import PG_ADMIN_URL, _create_pg_database, _drop_pg_database

# This run's rows, told apart from any other's.
TAG = f"ledger-test-{secrets.token_hex(4)}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def migrated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of this module's own: its tests take the usage table away for real."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    else:
        name = f"chatgate_ledger_{secrets.token_hex(4)}"
        asyncio.run(_create_pg_database(name))
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        url = f"{url}/{name}"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade_database, url).result()
    yield url
    if request.param == "postgresql":
        asyncio.run(_drop_pg_database(name))


@pytest.fixture
async def database(migrated: str) -> AsyncIterator[Database]:
    database = Database(migrated)
    async with database.session() as db:  # each test starts from an empty ledger
        await db.execute(text("DELETE FROM usage_records"))
        await db.execute(text("DELETE FROM model_prices"))
        await db.commit()
    yield database
    await database.close()


def count_inserts(database: Database) -> list[str]:
    """Every INSERT into usage_records the engine sends (one per statement, batches included)."""
    seen: list[str] = []

    def before(_: Any, __: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO USAGE_RECORDS"):
            seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", before)
    return seen


def record(ledger: Ledger, user: str = "u1", **fields: Any) -> float:
    values: dict[str, Any] = {
        "user_id": user, "key_id": None, "assistant_id": TAG, "route": "chat",
        "engine": "e1", "model": "m1", "prompt_tokens": 10, "completion_tokens": 5, **fields,
    }  # fmt: skip
    return ledger.record(**values)


async def rows(database: Database, **where: Any) -> list[UsageRecord]:
    query = select(UsageRecord).filter_by(assistant_id=TAG, **where)
    async with database.session() as db:
        return list((await db.scalars(query)).all())


async def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_calls_are_written_in_batches_off_the_request_path(database: Database) -> None:
    inserts = count_inserts(database)
    prices = Prices(database=database, redis=None)
    await prices.seed({"m1": PriceConfig(input_per_million=2.0, output_per_million=8.0)})
    ledger = Ledger(database=database, prices=prices)
    await ledger.start()
    try:
        started = time.perf_counter()
        # Callers of their own: calls of one caller are summed into a row (below).
        costs = [record(ledger, user=f"u{i}") for i in range(1200)]
        took = time.perf_counter() - started
        # Nothing written on the caller's path: 1,200 calls are all still in the buffer.
        assert not inserts and ledger.pending == 1200
        assert took < 0.5, took
        assert costs[0] == pytest.approx((10 * 2.0 + 5 * 8.0) / 1e6)

        async def all_written() -> bool:
            return ledger.pending == 0 and len(await rows(database)) == 1200

        await wait_for(all_written)
    finally:
        await ledger.close()
    # 500 rows a statement: 1,200 calls took 3 INSERTs (a timed write may split them once more),
    # each one statement of many rows, not one row sent many times.
    assert 3 <= len(inserts) <= 4, len(inserts)
    assert max(statement.count("), (") for statement in inserts) == 499
    stored = await rows(database)
    assert {(r.route, r.engine, r.model, r.cached, r.calls) for r in stored} == {
        ("chat", "e1", "m1", False, 1)
    }
    assert len({r.user_id for r in stored}) == 1200
    assert sum(r.cost for r in stored) == pytest.approx(1200 * costs[0])
    assert {r.day for r in stored} == {r.created_at.date() for r in stored}


async def test_a_callers_calls_of_one_model_are_summed_into_one_row(database: Database) -> None:
    inserts = count_inserts(database)
    ledger = Ledger(database=database, prices=Prices(database=database, redis=None))
    for _ in range(2000):
        record(ledger)
    record(ledger, model="m2")  # another model, another row
    record(ledger, engine=None, cached=True)  # a cached answer likewise
    assert ledger.pending == 2002
    assert await ledger.flush()
    for _ in range(3):
        record(ledger)  # after the write: a row of its own
    await ledger.close()
    stored = await rows(database)
    assert sorted((r.model, r.cached, r.calls, r.prompt_tokens) for r in stored) == [
        ("m1", False, 3, 30), ("m1", False, 2000, 20_000), ("m1", True, 1, 10), ("m2", False, 1, 10)
    ]  # fmt: skip
    assert len(inserts) == 2


async def test_a_cached_answer_costs_nothing(database: Database) -> None:
    prices = Prices(database=database, redis=None)
    await prices.seed({"m1": PriceConfig(input_per_million=2.0, output_per_million=8.0)})
    ledger = Ledger(database=database, prices=prices)
    await ledger.start()
    try:
        assert record(ledger, engine=None, cached=True) == 0.0
        assert record(ledger, model="no-price") == 0.0
        assert await ledger.flush()
    finally:
        await ledger.close()
    cached = await rows(database, cached=True)
    assert len(cached) == 1 and cached[0].engine is None and cached[0].cost == 0.0


async def test_a_failed_write_keeps_its_rows_and_the_next_one_writes_them(
    database: Database,
) -> None:
    ledger = Ledger(database=database, prices=Prices(database=database, redis=None))
    await ledger.start()
    try:
        # The table is away for real: every INSERT fails until it is back.
        async with database.session() as db:
            await db.execute(text("ALTER TABLE usage_records RENAME TO usage_records_away"))
            await db.commit()
        for _ in range(300):
            record(ledger)

        async def failed() -> bool:
            return ledger._failures >= 1

        await wait_for(failed)
        assert ledger.pending == 300
        record(ledger, user="u2")  # recorded meanwhile: kept after the failed rows
        async with database.session() as db:
            await db.execute(text("ALTER TABLE usage_records_away RENAME TO usage_records"))
            await db.commit()

        async def recovered() -> bool:
            return ledger.pending == 0

        await wait_for(recovered)
    finally:
        await ledger.close()
    assert sum(r.calls for r in await rows(database, user_id="u1")) == 300
    assert sum(r.calls for r in await rows(database, user_id="u2")) == 1


async def test_close_writes_every_row_left(database: Database) -> None:
    ledger = Ledger(database=database, prices=Prices(database=database, redis=None))
    await ledger.start()
    for _ in range(77):
        record(ledger)
    await ledger.close()  # within the writer's second: all 77 were still waiting
    assert sum(r.calls for r in await rows(database)) == 77


async def test_a_full_buffer_drops_and_counts_rather_than_grow(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chatgate.usage.ledger.MAX_ROWS", 10)
    ledger = Ledger(database=database, prices=Prices(database=database, redis=None))
    for i in range(15):
        record(ledger, user=f"u{i}")  # a row each
    assert ledger.pending == 10 and ledger._dropped == 5
    await ledger.close()
    assert len(await rows(database)) == 10


async def test_erasure_pseudonymizes_written_buffered_and_running_calls(
    database: Database,
) -> None:
    ledger = Ledger(database=database, prices=Prices(database=database, redis=None))
    await ledger.start()
    try:
        record(ledger, user=f"gone-{TAG}")
        assert await ledger.flush()
        record(ledger, user=f"gone-{TAG}")  # still in the buffer
        began = utcnow()  # a call running when the erasure comes
        await asyncio.sleep(0.01)
        changed = await ledger.forget(f"gone-{TAG}", utcnow())
        record(ledger, user=f"gone-{TAG}", began=began)
        record(ledger, user=f"gone-{TAG}")  # a call begun after: theirs again
        record(ledger, user="kept")
        assert await ledger.flush()
    finally:
        await ledger.close()
    assert changed == 2  # one written, one waiting
    users = Counter(row.user_id for row in await rows(database))
    assert users == {ERASED: 3, f"gone-{TAG}": 1, "kept": 1}


async def test_an_overlong_value_is_cut_rather_than_fail_the_rows_around_it(
    database: Database,
) -> None:
    ledger = Ledger(database=database, prices=Prices(database=database, redis=None))
    record(ledger)
    record(ledger, model="m" * 300, engine="e" * 100, route="r" * 50)
    record(ledger)
    assert await ledger.flush()
    await ledger.close()
    stored = await rows(database)
    assert len(stored) == 2 and sum(r.calls for r in stored) == 3
    assert max(len(r.model) for r in stored) == 200
    assert max(len(r.engine or "") for r in stored) == 64
