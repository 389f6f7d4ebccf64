"""What budgets have spent, shared by every process: per budget and period, a Redis hash of the
settled tokens and cost, and a sorted set of the reservations still open (member
`id|tokens|cost`, scored by when it stops counting, so one a dead process never settled lapses).

Reserving and settling are one Lua script each, so two processes never both see room that only
one call has. A call is admitted when what is committed (settled and reserved) plus its own
prompt stays within the maximum; it then reserves its prompt and its whole possible answer. So
calls admitted at the edge can overspend by at most their answer each (`docs/api.md`,
"Budgets"). Without Redis (one process) `MemorySpendStore` keeps the same rules in memory.

An account that has never been counted (a budget new this period, a Redis that lost its keys, a
process restarted on the embedded default) is first seeded with what the usage ledger holds of
its subject this period (`seed`, once: the `s` field), so a budget set mid-month or a restart
never forgets what was spent.
"""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis

from chatgate.core.redis import REDIS_TIMEOUT

# A reservation stops counting this long after it was made: as long as an answer may take
# (chat/answers.py's STALE_AFTER), so one whose process died frees its room within that.
RESERVATION_SECONDS = 15 * 60
# Kept past the period's end for the admin API's last look and for late settlements.
KEEP_AFTER_PERIOD = 2 * 24 * 3600
PREFIX = "chatgate:budget"


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC day or month `now` falls in: its start, and when it resets."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


@dataclass(frozen=True, slots=True)
class Account:
    """One budget's spend in one period: where it is kept, its maxima (None: not limited), and
    when it resets (epoch seconds)."""

    scope: str
    subject_id: str
    period: str
    key: str
    max_tokens: int | None
    max_cost: float | None
    resets_at: float

    @classmethod
    def of(
        cls,
        *,
        scope: str,
        subject_id: str,
        period: str,
        max_tokens: int | None,
        max_cost: float | None,
        now: datetime,
    ) -> Account:
        start, end = period_bounds(period, now)
        # The subject last: an id may hold any character, the other parts cannot.
        key = f"{scope}:{period}:{start:%Y-%m-%d}:{subject_id}"
        return cls(scope, subject_id, period, key, max_tokens, max_cost, end.timestamp())

    @property
    def spent_key(self) -> str:
        return f"{PREFIX}:spent:{self.key}"

    @property
    def open_key(self) -> str:
        return f"{PREFIX}:open:{self.key}"

    @property
    def expires_at(self) -> int:
        return int(self.resets_at) + KEEP_AFTER_PERIOD


@dataclass(frozen=True, slots=True)
class Reservation:
    """Room held in every account that applies to one call, until it is settled."""

    id: str
    accounts: tuple[Account, ...]
    tokens: int
    cost: float
    # What the call's prompt was counted as here, and the model its cost is priced at.
    prompt_tokens: int
    model: str

    @property
    def member(self) -> str:
        return f"{self.id}|{self.tokens}|{self.cost!r}"


@dataclass(frozen=True, slots=True)
class Admission:
    """A reservation's outcome: the account that refused it (None: admitted), and whether it
    was admitted at the edge (its whole possible answer did not fit); or, with nothing
    reserved, an account to seed first."""

    refused: Account | None = None
    edge: bool = False
    unseeded: Account | None = None


@dataclass(frozen=True, slots=True)
class Spend:
    tokens: int
    cost: float
    reserved_tokens: int
    reserved_cost: float
    seeded: bool = True


class SpendStore(Protocol):
    async def reserve(
        self, reservation: Reservation, *, prompt_cost: float, now: float
    ) -> Admission: ...

    async def settle(self, reservation: Reservation, *, tokens: int, cost: float) -> None:
        """Ends the reservation and adds what the call really used."""
        ...

    async def spent(self, account: Account, *, now: float) -> Spend: ...

    async def seed(self, account: Account, *, tokens: int, cost: float) -> None:
        """Adds what the ledger holds of the account's period, unless it is seeded already."""
        ...


def _parse(member: str) -> tuple[int, float]:
    _, tokens, cost = member.rsplit("|", 2)
    return int(tokens), float(cost)


def _over(total: float, limit: float | None) -> bool:
    return limit is not None and total > limit


def _judge(
    account: Account, spend: Spend, reservation: Reservation, prompt_cost: float
) -> tuple[bool, bool]:
    """(refused, at the edge) for one account: the same rule in Lua below."""
    tokens = spend.tokens + spend.reserved_tokens
    cost = spend.cost + spend.reserved_cost
    if _over(tokens + reservation.prompt_tokens, account.max_tokens):
        return True, False
    if _over(cost + prompt_cost, account.max_cost):
        return True, False
    edge = _over(tokens + reservation.tokens, account.max_tokens) or _over(
        cost + reservation.cost, account.max_cost
    )
    return False, edge


# KEYS: per account its spent hash, then its open set. ARGV: now, member, until, prompt tokens,
# prompt cost, the reservation's tokens and cost, then per account max tokens, max cost (-1:
# none) and when its keys expire. Returns {refusing account (0: none; -i: account i is not
# seeded, nothing reserved), edge (0 or 1)}.
_RESERVE = """
local now, member, till = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local pt, pc, rt, rc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local edge = 0
local n = #KEYS / 2
for i = 1, n do
  local spent, open = KEYS[2 * i - 1], KEYS[2 * i]
  local mt, mc = tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  if redis.call('HEXISTS', spent, 's') == 0 then return {-i, 0} end
  redis.call('ZREMRANGEBYSCORE', open, '-inf', now)
  local t = tonumber(redis.call('HGET', spent, 't') or 0)
  local c = tonumber(redis.call('HGET', spent, 'c') or 0)
  for _, m in ipairs(redis.call('ZRANGE', open, 0, -1)) do
    local _, _, ot, oc = string.find(m, '|([^|]*)|([^|]*)$')
    t, c = t + tonumber(ot), c + tonumber(oc)
  end
  if mt >= 0 and t + pt > mt then return {i, 0} end
  if mc >= 0 and c + pc > mc then return {i, 0} end
  if (mt >= 0 and t + rt > mt) or (mc >= 0 and c + rc > mc) then edge = 1 end
end
for i = 1, n do
  local at = ARGV[7 + 3 * i]
  redis.call('ZADD', KEYS[2 * i], till, member)
  redis.call('EXPIREAT', KEYS[2 * i], at)
  redis.call('EXPIREAT', KEYS[2 * i - 1], at)
end
return {0, edge}
"""

# KEYS as above. ARGV: member, tokens, cost, then per account when its keys expire.
_SETTLE = """
for i = 1, #KEYS / 2 do
  local spent, open, at = KEYS[2 * i - 1], KEYS[2 * i], ARGV[3 + i]
  redis.call('ZREM', open, ARGV[1])
  if tonumber(ARGV[2]) > 0 then redis.call('HINCRBY', spent, 't', ARGV[2]) end
  if tonumber(ARGV[3]) > 0 then redis.call('HINCRBYFLOAT', spent, 'c', ARGV[3]) end
  redis.call('EXPIREAT', spent, at)
  redis.call('EXPIREAT', open, at)
end
return 0
"""


# KEYS: the spent hash. ARGV: tokens, cost, when it expires. Once per account and period.
_SEED = """
if redis.call('HSETNX', KEYS[1], 's', 1) == 1 then
  if tonumber(ARGV[1]) > 0 then redis.call('HINCRBY', KEYS[1], 't', ARGV[1]) end
  if tonumber(ARGV[2]) > 0 then redis.call('HINCRBYFLOAT', KEYS[1], 'c', ARGV[2]) end
end
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 0
"""


def _keys(accounts: Sequence[Account]) -> list[str]:
    return [key for a in accounts for key in (a.spent_key, a.open_key)]


class RedisSpendStore:
    """The spend of every process, in Redis; each call bounded by `timeout` (its errors are
    the caller's to judge: a reservation fails closed, a settlement is logged)."""

    def __init__(self, redis: Redis, *, timeout: float = REDIS_TIMEOUT) -> None:
        self._redis = redis
        self._timeout = timeout * 2
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._seed = redis.register_script(_SEED)

    async def reserve(
        self, reservation: Reservation, *, prompt_cost: float, now: float
    ) -> Admission:
        args: list[str | int | float] = [
            now, reservation.member, now + RESERVATION_SECONDS, reservation.prompt_tokens,
            repr(prompt_cost), reservation.tokens, repr(reservation.cost),
        ]  # fmt: skip
        for account in reservation.accounts:
            limit_tokens = -1 if account.max_tokens is None else account.max_tokens
            limit_cost = -1 if account.max_cost is None else account.max_cost
            args += [limit_tokens, repr(float(limit_cost)), account.expires_at]
        async with asyncio.timeout(self._timeout):
            refused, edge = await self._reserve(keys=_keys(reservation.accounts), args=args)
        if int(refused) < 0:
            return Admission(unseeded=reservation.accounts[-int(refused) - 1])
        refusing = reservation.accounts[int(refused) - 1] if int(refused) else None
        return Admission(refused=refusing, edge=bool(int(edge)))

    async def settle(self, reservation: Reservation, *, tokens: int, cost: float) -> None:
        args: list[str | int] = [reservation.member, tokens, repr(cost)]
        args += [account.expires_at for account in reservation.accounts]
        async with asyncio.timeout(self._timeout):
            await self._settle(keys=_keys(reservation.accounts), args=args)

    async def spent(self, account: Account, *, now: float) -> Spend:
        async with asyncio.timeout(self._timeout):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hmget(account.spent_key, ["t", "c", "s"])
                pipe.zrangebyscore(account.open_key, f"({now}", "+inf")
                (tokens, cost, seeded), open_members = await pipe.execute()
        held = [_parse(m.decode() if isinstance(m, bytes) else m) for m in open_members]
        return Spend(
            tokens=int(tokens or 0), cost=float(cost or 0),
            reserved_tokens=sum(t for t, _ in held), reserved_cost=sum(c for _, c in held),
            seeded=seeded is not None,
        )  # fmt: skip

    async def seed(self, account: Account, *, tokens: int, cost: float) -> None:
        async with asyncio.timeout(self._timeout):
            await self._seed(
                keys=[account.spent_key], args=[tokens, repr(cost), account.expires_at]
            )


@dataclass(slots=True)
class _Ledger:
    tokens: int = 0
    cost: float = 0.0
    # member -> when it stops counting
    open: dict[str, float] = field(default_factory=dict)
    expires_at: float = 0.0
    seeded: bool = False


class MemorySpendStore:
    """The same rules in one process's memory (the embedded default, without Redis)."""

    def __init__(self) -> None:
        self._ledgers: dict[str, _Ledger] = {}

    def _ledger(self, account: Account, now: float) -> _Ledger:
        ledger = self._ledgers.get(account.key)
        if ledger is None or ledger.expires_at <= now:
            self._forget_expired(now)
            ledger = self._ledgers[account.key] = _Ledger(expires_at=account.expires_at)
        for member in [m for m, until in ledger.open.items() if until <= now]:
            del ledger.open[member]
        return ledger

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, ledger in self._ledgers.items() if ledger.expires_at <= now]:
            del self._ledgers[key]

    def _spend(self, ledger: _Ledger) -> Spend:
        held = [_parse(member) for member in ledger.open]
        return Spend(
            tokens=ledger.tokens, cost=ledger.cost,
            reserved_tokens=sum(t for t, _ in held), reserved_cost=sum(c for _, c in held),
            seeded=ledger.seeded,
        )  # fmt: skip

    async def reserve(
        self, reservation: Reservation, *, prompt_cost: float, now: float
    ) -> Admission:
        edge = False
        ledgers = [self._ledger(account, now) for account in reservation.accounts]
        for account, ledger in zip(reservation.accounts, ledgers, strict=True):
            if not ledger.seeded:
                return Admission(unseeded=account)
            refused, at_edge = _judge(account, self._spend(ledger), reservation, prompt_cost)
            if refused:
                return Admission(refused=account)
            edge = edge or at_edge
        for ledger in ledgers:
            ledger.open[reservation.member] = now + RESERVATION_SECONDS
        return Admission(edge=edge)

    async def settle(self, reservation: Reservation, *, tokens: int, cost: float) -> None:
        now = datetime.now(UTC).timestamp()
        for account in reservation.accounts:
            ledger = self._ledger(account, min(now, account.expires_at - 1))
            ledger.open.pop(reservation.member, None)
            ledger.tokens += max(tokens, 0)
            ledger.cost += max(cost, 0.0)

    async def spent(self, account: Account, *, now: float) -> Spend:
        return self._spend(self._ledger(account, now))

    async def seed(self, account: Account, *, tokens: int, cost: float) -> None:
        ledger = self._ledger(account, min(datetime.now(UTC).timestamp(), account.expires_at - 1))
        if not ledger.seeded:
            ledger.seeded = True
            ledger.tokens += tokens
            ledger.cost += cost
