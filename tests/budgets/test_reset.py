"""A budget's period: a day budget refuses until the next UTC midnight and has room again after
it (a month budget: the first of the next month); a reservation no process settled stops
counting after 15 minutes. The clock is the `now` a reservation is made at, in memory and in
Redis alike."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from chatgate.budgets.schemas import BudgetSpec
from chatgate.budgets.service import BudgetExceeded, Budgets
from chatgate.budgets.store import MemorySpendStore, RedisSpendStore
from chatgate.core.db import Database
from chatgate.core.redis import connect_redis
from chatgate.providers.base import Usage
from chatgate.usage.models import UsageRecord
from tests.budgets.conftest import BudgetGateway, new_user


@pytest.fixture(params=["memory", "redis"])
async def budgets(
    budget_gateway: BudgetGateway, request: pytest.FixtureRequest
) -> AsyncIterator[Budgets]:
    database = Database(budget_gateway.database_url)
    redis = connect_redis(budget_gateway.redis.url)
    store = RedisSpendStore(redis) if request.param == "redis" else MemorySpendStore()
    try:
        yield Budgets(database=database, redis=redis, store=store)
    finally:
        await redis.aclose()
        await database.close()


async def budget_for(budgets: Budgets, **spec: object) -> str:
    subject = new_user()
    await budgets.put(
        admin_id="test-admin",
        scope="user",
        subject_id=subject,
        spec=BudgetSpec.model_validate(spec),
    )
    return subject


async def test_a_day_budget_resets_at_the_next_utc_midnight(budgets: Budgets) -> None:
    subject = await budget_for(budgets, period="day", max_tokens=100)
    applying = await budgets.applying(user_id=subject, key_id=None)
    evening = datetime(2030, 3, 14, 23, 59, 30, tzinfo=UTC)
    held = await budgets.reserve(
        applying, model="m", prompt_tokens=30, answer_tokens=50, now=evening
    )
    assert held is not None
    await budgets.settle(held, Usage(30, 60))
    with pytest.raises(BudgetExceeded) as refused:
        await budgets.reserve(applying, model="m", prompt_tokens=20, answer_tokens=50, now=evening)
    assert refused.value.status == 429 and refused.value.code == "budget_exceeded"
    assert refused.value.headers["Retry-After"] == "30"
    assert "2030-03-15T00:00:00Z" in refused.value.message
    row = await budgets.row("user", subject)
    seen = await budgets.view(row, now=evening)
    assert (seen.spent_tokens, seen.reserved_tokens) == (90, 0)
    assert seen.resets_at == datetime(2030, 3, 15, tzinfo=UTC)

    morning = evening + timedelta(seconds=31)
    again = await budgets.reserve(
        applying, model="m", prompt_tokens=20, answer_tokens=50, now=morning
    )
    assert again is not None
    assert (await budgets.view(row, now=morning)).reserved_tokens == 70
    await budgets.release(again)
    assert (await budgets.view(row, now=morning)).spent_tokens == 0


async def test_a_month_budget_resets_on_the_first(budgets: Budgets) -> None:
    subject = await budget_for(budgets, period="month", max_tokens=10)
    applying = await budgets.applying(user_id=subject, key_id=None)
    last_day = datetime(2031, 2, 28, 12, tzinfo=UTC)
    held = await budgets.reserve(
        applying, model="m", prompt_tokens=10, answer_tokens=0, now=last_day
    )
    await budgets.settle(held, Usage(10, 0))
    with pytest.raises(BudgetExceeded) as refused:
        await budgets.reserve(applying, model="m", prompt_tokens=1, answer_tokens=0, now=last_day)
    assert "2031-03-01T00:00:00Z" in refused.value.message
    assert refused.value.headers["Retry-After"] == str(12 * 3600)
    first = datetime(2031, 3, 1, tzinfo=UTC)
    assert await budgets.reserve(applying, model="m", prompt_tokens=1, answer_tokens=0, now=first)


async def test_a_reservation_never_settled_lapses(budgets: Budgets) -> None:
    subject = await budget_for(budgets, period="day", max_tokens=100)
    applying = await budgets.applying(user_id=subject, key_id=None)
    start = datetime(2030, 6, 1, 9, tzinfo=UTC)
    # Its process dies: this reservation is never settled.
    assert await budgets.reserve(applying, model="m", prompt_tokens=30, answer_tokens=60, now=start)
    with pytest.raises(BudgetExceeded):
        await budgets.reserve(applying, model="m", prompt_tokens=20, answer_tokens=0, now=start)
    # Admitted at the edge: its prompt fits, its whole answer does not.
    edge = await budgets.reserve(applying, model="m", prompt_tokens=5, answer_tokens=60, now=start)
    assert edge is not None
    await budgets.release(edge)
    later = start + timedelta(minutes=15, seconds=1)
    assert await budgets.reserve(applying, model="m", prompt_tokens=20, answer_tokens=0, now=later)


async def test_a_user_and_a_key_budget_both_hold(budgets: Budgets) -> None:
    user = await budget_for(budgets, period="day", max_tokens=1000)
    key = new_user()
    await budgets.put(
        admin_id="test-admin",
        scope="key",
        subject_id=key,
        spec=BudgetSpec(period="day", max_tokens=50),
    )
    applying = await budgets.applying(user_id=user, key_id=key)
    assert sorted(a.scope for a in applying) == ["key", "user"]
    now = datetime(2030, 7, 1, 9, tzinfo=UTC)
    with pytest.raises(BudgetExceeded) as refused:
        await budgets.reserve(applying, model="m", prompt_tokens=60, answer_tokens=0, now=now)
    assert "API key" in refused.value.message
    # Refused by the key: nothing held in the user's budget either.
    user_row = await budgets.row("user", user)
    assert (await budgets.view(user_row, now=now)).reserved_tokens == 0
    held = await budgets.reserve(applying, model="m", prompt_tokens=40, answer_tokens=0, now=now)
    await budgets.settle(held, Usage(40, 0))
    assert (await budgets.view(user_row, now=now)).spent_tokens == 40
    assert (await budgets.view(await budgets.row("key", key), now=now)).spent_tokens == 40
    assert await budgets.applying(user_id=new_user(), key_id=None) == ()


async def test_a_budget_counts_what_the_ledger_holds_of_its_period_and_survives_a_lost_store(
    budget_gateway: BudgetGateway, budgets: Budgets, request: pytest.FixtureRequest
) -> None:
    """Set mid-period, a budget starts from the usage ledger's figures for the period (cached
    answers and other days left out); a store that lost them (Redis emptied, an embedded process
    restarted: a new memory store) is seeded again, not unlimited."""
    subject = await budget_for(budgets, period="day", max_tokens=100)
    noon = datetime(2030, 9, 9, 12, tzinfo=UTC)
    database = Database(budget_gateway.database_url)
    try:
        async with database.session() as db:
            await db.execute(
                insert(UsageRecord),
                [
                    usage_row(subject, noon - timedelta(hours=3), tokens=(30, 40), cost=0.5),
                    usage_row(subject, noon - timedelta(hours=1), tokens=(5, 5), cost=0.0),
                    usage_row(subject, noon, tokens=(50, 50), cost=0.0, cached=True),
                    usage_row(subject, noon - timedelta(days=1), tokens=(500, 500), cost=9.0),
                    usage_row(new_user(), noon, tokens=(500, 500), cost=9.0),
                ],
            )
            await db.commit()
    finally:
        await database.close()
    row = await budgets.row("user", subject)
    assert (await budgets.view(row, now=noon)).spent_tokens == 80
    applying = await budgets.applying(user_id=subject, key_id=None)
    with pytest.raises(BudgetExceeded):
        await budgets.reserve(applying, model="m", prompt_tokens=21, answer_tokens=0, now=noon)
    held = await budgets.reserve(applying, model="m", prompt_tokens=20, answer_tokens=0, now=noon)
    await budgets.settle(held, Usage(15, 0))
    assert (await budgets.view(row, now=noon)).spent_tokens == 95

    # The store loses everything: this period's spend comes back from the ledger, not zero.
    if request.node.callspec.params["budgets"] == "redis":
        (account,) = (a.account(noon) for a in applying)
        redis = connect_redis(budget_gateway.redis.url)
        try:
            await redis.delete(account.spent_key, account.open_key)
        finally:
            await redis.aclose()
        assert (await budgets.view(row, now=noon)).spent_tokens == 80  # the 15: not in the ledger
    else:  # a process restarted: a new store in memory
        database = Database(budget_gateway.database_url)
        try:
            restarted = Budgets(database=database, redis=None, store=MemorySpendStore())
            assert (await restarted.view(row, now=noon)).spent_tokens == 80
            with pytest.raises(BudgetExceeded):
                await restarted.reserve(
                    applying, model="m", prompt_tokens=21, answer_tokens=0, now=noon
                )
        finally:
            await database.close()


def usage_row(
    user: str, at: datetime, *, tokens: tuple[int, int], cost: float, cached: bool = False
) -> dict[str, object]:
    return {
        "id": uuid.uuid4(), "created_at": at, "day": at.date(), "user_id": user, "key_id": None,
        "assistant_id": "echo", "route": "chat", "engine": None if cached else "double",
        "model": "m", "prompt_tokens": tokens[0], "completion_tokens": tokens[1], "cost": cost,
        "cached": cached, "fallback": False,
    }  # fmt: skip
