"""Budgets per user and per API key: their definitions (rows, cached per process and reloaded
when any process changes one, through a revision as the assistant catalog does), and the
reserve-then-settle of every engine call against what they have spent (`store.py`).

A call whose user and key have no budget asks nothing of the spend store. One that has budgets
reserves its prompt and its whole possible answer in all of them at once, or is refused with
`429 budget_exceeded` when any is spent; a store that cannot be read refuses with
`503 budget_unavailable` (never unlimited). Settling never fails the call: an error is logged
and counted, and the reservation lapses on its own. A budget's first call in a period (and its
first after its spend was lost: a Redis emptied, an embedded process restarted) seeds it with
what the usage ledger holds of that period.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from chatgate.audit.service import record_audit_event
from chatgate.budgets.models import Budget, Period, Scope
from chatgate.budgets.schemas import BudgetOut, BudgetSpec
from chatgate.budgets.store import Account, Admission, Reservation, Spend, SpendStore, period_bounds
from chatgate.core.db import Database
from chatgate.core.errors import AppError, NotFound, ServiceUnavailable
from chatgate.core.ids import new_id
from chatgate.core.redis import REDIS_ERRORS, RedisOutage
from chatgate.core.revision import Revision
from chatgate.core.time import utcnow
from chatgate.observability import metrics
from chatgate.providers.base import Usage
from chatgate.usage.report import spent_between

REVISION_KEY = "chatgate:budgets:revision"
# How long seeding an account from the usage ledger may take (a sum over an index).
SEED_SECONDS = 5.0
log = logging.getLogger("chatgate.budgets")
# The spend store's, and the database's while an account is seeded from the usage ledger.
STORE_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, TimeoutError, SQLAlchemyError, OSError)


class Pricing(Protocol):
    """What a call costs (usage/prices.py's `Prices`)."""

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float: ...


class FreePricing:
    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class Allowance:
    """A budget as the hot path keeps it."""

    scope: Scope
    subject_id: str
    period: Period
    max_tokens: int | None
    max_cost: float | None

    def account(self, now: datetime) -> Account:
        return Account.of(
            scope=self.scope, subject_id=self.subject_id, period=self.period,
            max_tokens=self.max_tokens, max_cost=self.max_cost, now=now,
        )  # fmt: skip


class BudgetExceeded(AppError):
    status, code = 429, "budget_exceeded"


def budget_not_found() -> NotFound:
    return NotFound("no budget is set for this user or key", code="budget_not_found")


def budget_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "budgets cannot be checked right now; try again shortly",
        code="budget_unavailable", headers={"Retry-After": "5"},
    )  # fmt: skip


def exceeded(allowance: Allowance, *, resets_at: float, now: datetime) -> BudgetExceeded:
    """The refusal: whose budget, of which period, and when it resets (never the id itself)."""
    wait = max(1, math.ceil(resets_at - now.timestamp()))
    when = datetime.fromtimestamp(resets_at, UTC).isoformat().replace("+00:00", "Z")
    whose = "this API key's" if allowance.scope == "key" else "this user's"
    period = "daily" if allowance.period == "day" else "monthly"
    return BudgetExceeded(
        f"{whose} {period} budget is spent; it resets at {when}",
        headers={"Retry-After": str(wait)},
    )


class Budgets:
    def __init__(
        self, *, database: Database, redis: Redis | None, store: SpendStore,
        pricing: Pricing | None = None,
    ) -> None:  # fmt: skip
        self._database = database
        self._revision = Revision(redis, REVISION_KEY)
        self._store = store
        self._pricing: Pricing = pricing or FreePricing()
        self._outage = RedisOutage()
        self._by_subject: dict[tuple[str, str], Allowance] = {}
        self._loaded_revision: int | None = None
        self._lock = asyncio.Lock()

    # --- the hot path -------------------------------------------------------------------

    async def _current(self) -> dict[tuple[str, str], Allowance]:
        revision = await self._revision.current()
        if revision != self._loaded_revision:
            async with self._lock:
                if revision != self._loaded_revision:
                    async with self._database.session() as db:
                        rows = (await db.scalars(select(Budget))).all()
                    self._by_subject = {(r.scope, r.subject_id): _allowance(r) for r in rows}
                    self._loaded_revision = revision
        return self._by_subject

    async def applying(self, *, user_id: str, key_id: str | None) -> tuple[Allowance, ...]:
        """The budgets a call by this user (with this key) is held to; none, mostly."""
        current = await self._current()
        if not current:
            return ()
        found = [current.get(("user", user_id)), current.get(("key", key_id)) if key_id else None]
        return tuple(a for a in found if a is not None)

    async def reserve(
        self,
        allowances: tuple[Allowance, ...],
        *,
        model: str,
        prompt_tokens: int,
        answer_tokens: int,
        reservation_id: str | None = None,
        now: datetime | None = None,
    ) -> Reservation | None:
        """Holds the call's prompt and its whole possible answer in every budget that applies,
        or refuses it (`429 budget_exceeded`, `503 budget_unavailable`)."""
        if not allowances:
            return None
        now = now or utcnow()
        reservation = Reservation(
            id=reservation_id or new_id().hex,
            accounts=tuple(a.account(now) for a in allowances),
            tokens=prompt_tokens + answer_tokens,
            cost=self._pricing.cost(model, prompt_tokens, answer_tokens),
            prompt_tokens=prompt_tokens,
            model=model,
        )
        if self._outage.ongoing:
            metrics.budget_store_errors.labels("reserve").inc()
            raise budget_unavailable()
        try:
            admission = await self._admit(reservation, prompt_tokens=prompt_tokens, now=now)
        except STORE_ERRORS as exc:
            metrics.budget_store_errors.labels("reserve").inc()
            if self._outage.failed():
                log.error("the budget store cannot be read; refusing budgeted calls: %r", exc)
            raise budget_unavailable() from None
        if self._outage.answered():
            log.warning("the budget store answers again")
        if admission.refused is not None:
            refused = allowances[reservation.accounts.index(admission.refused)]
            metrics.budget_refusals.labels(refused.scope).inc()
            raise exceeded(refused, resets_at=admission.refused.resets_at, now=now)
        if admission.edge:
            metrics.budget_edge_admissions.inc()
        return reservation

    async def _admit(
        self, reservation: Reservation, *, prompt_tokens: int, now: datetime
    ) -> Admission:
        """The store's admission, once each account the call finds unseeded is seeded."""
        prompt_cost = self._pricing.cost(reservation.model, prompt_tokens, 0)
        for _ in range(len(reservation.accounts) + 1):
            admission = await self._store.reserve(
                reservation, prompt_cost=prompt_cost, now=now.timestamp()
            )
            if admission.unseeded is None:
                return admission
            await self._seed(admission.unseeded, now)
        # Seeded each time and never kept: a store that forgets as fast is no store.
        raise TimeoutError("the budget store does not keep what it is seeded with")

    async def _seed(self, account: Account, now: datetime) -> None:
        """What the usage ledger holds of the account's subject this period, added once."""
        start, end = period_bounds(account.period, now)
        async with asyncio.timeout(SEED_SECONDS), self._database.session() as db:
            tokens, cost = await spent_between(
                db, scope=account.scope, subject_id=account.subject_id,
                first_day=start.date(), end_day=end.date(),
            )  # fmt: skip
        await self._store.seed(account, tokens=tokens, cost=cost)

    async def reserve_for(
        self, *, user_id: str, key_id: str | None, model: str, prompt_tokens: int,
        answer_tokens: int,
    ) -> Reservation | None:  # fmt: skip
        allowances = await self.applying(user_id=user_id, key_id=key_id)
        return await self.reserve(
            allowances, model=model, prompt_tokens=prompt_tokens, answer_tokens=answer_tokens
        )

    async def settle(
        self, reservation: Reservation | None, usage: Usage | None, answer_tokens: int = 0
    ) -> None:
        """Ends the reservation with what the call used: the engine's usage; else the prompt
        as counted here and `answer_tokens`; nothing at all when no answer came. Never raises."""
        if reservation is None:
            return
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            prompt, completion = usage.prompt_tokens, usage.completion_tokens
        elif answer_tokens > 0:
            prompt, completion = reservation.prompt_tokens, answer_tokens
        else:
            prompt, completion = 0, 0
        cost = self._pricing.cost(reservation.model, prompt, completion)
        try:
            await self._store.settle(reservation, tokens=prompt + completion, cost=cost)
        except STORE_ERRORS as exc:
            metrics.budget_store_errors.labels("settle").inc()
            log.error(
                "a budget reservation could not be settled (it lapses on its own): %r", exc,
                extra={"reservation": reservation.id},
            )  # fmt: skip

    async def release(self, reservation: Reservation | None) -> None:
        """Ends a reservation whose call used nothing (refused later, answered from cache)."""
        await self.settle(reservation, None, 0)

    # --- the admin API ------------------------------------------------------------------

    async def view(self, row: Budget, *, now: datetime | None = None) -> BudgetOut:
        now = now or utcnow()
        allowance = _allowance(row)
        account = allowance.account(now)
        try:
            spend = await self._store.spent(account, now=now.timestamp())
            if not spend.seeded:
                await self._seed(account, now)
                spend = await self._store.spent(account, now=now.timestamp())
        except STORE_ERRORS:
            metrics.budget_store_errors.labels("read").inc()
            raise budget_unavailable() from None
        return _out(allowance, spend, period_bounds(allowance.period, now)[1])

    async def row(self, scope: Scope, subject_id: str) -> Budget:
        async with self._database.session() as db:
            row = await db.get(Budget, (scope, subject_id))
        if row is None:
            raise budget_not_found()
        return row

    async def everything(self) -> list[Budget]:
        async with self._database.session() as db:
            query = select(Budget).order_by(Budget.scope, Budget.subject_id)
            return list((await db.scalars(query)).all())

    async def put(
        self, *, admin_id: str, scope: Scope, subject_id: str, spec: BudgetSpec
    ) -> Budget:
        async with self._database.session() as db:
            row = await db.get(Budget, (scope, subject_id))
            now = utcnow()
            if row is None:
                row = Budget(scope=scope, subject_id=subject_id, created_at=now)
                db.add(row)
            row.period, row.max_tokens, row.max_cost = spec.period, spec.max_tokens, spec.max_cost
            row.updated_at = now
            record_audit_event(
                db, action="budget.set", user_id=admin_id, target_type=f"budget.{scope}",
                target_id=subject_id, details=spec.model_dump(),
            )  # fmt: skip
            await db.commit()
        await self._changed()
        return row

    async def remove(self, *, admin_id: str, scope: Scope, subject_id: str) -> None:
        async with self._database.session() as db:
            row = await db.get(Budget, (scope, subject_id))
            if row is None:
                raise budget_not_found()
            await db.delete(row)
            record_audit_event(
                db, action="budget.removed", user_id=admin_id, target_type=f"budget.{scope}",
                target_id=subject_id,
            )  # fmt: skip
            await db.commit()
        await self._changed()

    async def _changed(self) -> None:
        """This process reloads on its next call, whatever Redis says; the others are told."""
        self._loaded_revision = None
        await self._revision.bump()


def _allowance(row: Budget) -> Allowance:
    scope: Scope = "key" if row.scope == "key" else "user"
    period: Period = "month" if row.period == "month" else "day"
    return Allowance(scope, row.subject_id, period, row.max_tokens, row.max_cost)


def _out(allowance: Allowance, spend: Spend, resets_at: datetime) -> BudgetOut:
    return BudgetOut(
        scope=allowance.scope, id=allowance.subject_id, period=allowance.period,
        max_tokens=allowance.max_tokens, max_cost=allowance.max_cost,
        spent_tokens=spend.tokens, spent_cost=spend.cost,
        reserved_tokens=spend.reserved_tokens, resets_at=resets_at,
    )  # fmt: skip
