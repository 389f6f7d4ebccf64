"""A circuit breaker per engine: closed, open, half-open; shared through Redis when configured.

Closed: calls go through; `failures` failed calls in a row open it. Open: calls are refused at
once for `open_seconds`. Then half-open: `half_open_probes` calls go through; as many successes
close it, one failure opens it again.

With Redis every process reads and changes one state (atomic Lua, on Redis's own clock, so no
two processes disagree about time). Each process also remembers until when a breaker it saw open
stays open: a refused call then costs no round trip, only a clock read. When Redis cannot be
reached the state falls back to this process until Redis answers again (logged once per outage).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatgate.core.config import ProviderConfig
from chatgate.core.policies import BreakerPolicy
from chatgate.observability import metrics
from chatgate.providers.base import ProviderUnavailable

log = logging.getLogger("chatgate.providers.breaker")

Outcome = Literal["success", "failure", "neutral"]
KEY_PREFIX = "chatgate:breaker"
KEY_TTL_MS = 24 * 3600 * 1000  # a breaker left alone for a day is closed, with nothing to keep
REDIS_TIMEOUT = 0.25  # seconds a breaker waits for Redis before deciding on its own
REDIS_RETRY_AFTER = 5.0  # seconds between tries to reach Redis again after it failed


class BreakerState(enum.IntEnum):
    """The values of the chatgate_breaker_state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


_NAMES = {state.name.lower(): state for state in BreakerState}


class CircuitOpen(ProviderUnavailable):
    status, code = 503, "upstream_circuit_open"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a breaker's store said: the state now, and for an admission whether the call may go."""

    state: BreakerState
    allowed: bool
    probe: bool = False
    # Open: seconds until it half-opens; half-open with every probe out: until their lease ends.
    wait: float = 0.0
    changed_from: BreakerState | None = None


class BreakerStore(Protocol):
    async def acquire(self, key: str, policy: BreakerPolicy, lease: float) -> Verdict: ...

    async def record(
        self, key: str, policy: BreakerPolicy, outcome: Outcome, probe: bool
    ) -> Verdict: ...


@dataclass(slots=True)
class _Circuit:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    until: float = 0.0  # open: when it may half-open; half-open: when its probes' lease ends
    probes: int = 0  # half-open: probes in flight
    successes: int = 0  # half-open: probes that succeeded


@dataclass
class LocalBreakerStore:
    """The breakers of this process alone (no Redis, or Redis unreachable)."""

    circuits: dict[str, _Circuit] = field(default_factory=dict)

    async def acquire(self, key: str, policy: BreakerPolicy, lease: float) -> Verdict:
        return self.acquire_now(key, policy, lease)

    async def record(
        self, key: str, policy: BreakerPolicy, outcome: Outcome, probe: bool
    ) -> Verdict:
        return self.record_now(key, policy, outcome, probe)

    def acquire_now(self, key: str, policy: BreakerPolicy, lease: float) -> Verdict:
        circuit, now = self.circuits.setdefault(key, _Circuit()), time.monotonic()
        if circuit.state is BreakerState.CLOSED:
            return Verdict(BreakerState.CLOSED, allowed=True)
        if circuit.state is BreakerState.OPEN:
            if now < circuit.until:
                return Verdict(BreakerState.OPEN, allowed=False, wait=circuit.until - now)
            circuit.state, circuit.probes, circuit.successes = BreakerState.HALF_OPEN, 1, 0
            circuit.until = now + lease
            return Verdict(
                BreakerState.HALF_OPEN, allowed=True, probe=True, changed_from=BreakerState.OPEN
            )
        if now >= circuit.until:
            circuit.probes = 0  # the probes in flight outlived their lease: count them lost
        if circuit.probes + circuit.successes < policy.half_open_probes:
            circuit.probes += 1
            circuit.until = now + lease
            return Verdict(BreakerState.HALF_OPEN, allowed=True, probe=True)
        return Verdict(BreakerState.HALF_OPEN, allowed=False, wait=circuit.until - now)

    def record_now(self, key: str, policy: BreakerPolicy, outcome: Outcome, probe: bool) -> Verdict:
        circuit, now = self.circuits.setdefault(key, _Circuit()), time.monotonic()

        def open_from(previous: BreakerState) -> Verdict:
            self.circuits[key] = _Circuit(BreakerState.OPEN, until=now + policy.open_seconds)
            return Verdict(
                BreakerState.OPEN, allowed=False, wait=policy.open_seconds, changed_from=previous
            )

        if circuit.state is BreakerState.CLOSED:
            if outcome == "failure":
                circuit.failures += 1
                if circuit.failures >= policy.failures:
                    return open_from(BreakerState.CLOSED)
            elif outcome == "success":
                circuit.failures = 0
            return Verdict(BreakerState.CLOSED, allowed=True)
        if circuit.state is BreakerState.OPEN:
            # A late result of a call let through before it opened changes nothing.
            return Verdict(BreakerState.OPEN, allowed=False, wait=max(circuit.until - now, 0.0))
        if outcome == "failure":
            return open_from(BreakerState.HALF_OPEN)
        if probe:
            circuit.probes = max(circuit.probes - 1, 0)
            if outcome == "success":
                circuit.successes += 1
                if circuit.successes >= policy.half_open_probes:
                    self.circuits[key] = _Circuit()
                    return Verdict(
                        BreakerState.CLOSED, allowed=True, changed_from=BreakerState.HALF_OPEN
                    )
        return Verdict(BreakerState.HALF_OPEN, allowed=False)


# The same state machine as LocalBreakerStore, in Redis. Times are Redis's own, in milliseconds.
# Returns {state, allowed, probe, wait_ms, changed_from}.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
_ACQUIRE = (
    _NOW
    + """
local key, max_probes, lease, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local s = redis.call('HMGET', key, 'state', 'until', 'probes', 'successes')
local state = s[1] or 'closed'
if state == 'closed' then return {'closed', 1, 0, 0, ''} end
local deadline = tonumber(s[2]) or 0
if state == 'open' then
  if now < deadline then return {'open', 0, 0, deadline - now, ''} end
  redis.call('HSET', key, 'state', 'half_open', 'probes', 1, 'successes', 0, 'until', now + lease)
  redis.call('PEXPIRE', key, ttl)
  return {'half_open', 1, 1, 0, 'open'}
end
local probes, successes = tonumber(s[3]) or 0, tonumber(s[4]) or 0
if now >= deadline then probes = 0 end
if probes + successes < max_probes then
  redis.call('HSET', key, 'probes', probes + 1, 'until', now + lease)
  redis.call('PEXPIRE', key, ttl)
  return {'half_open', 1, 1, 0, ''}
end
return {'half_open', 0, 0, deadline - now, ''}
"""
)
_RECORD = (
    _NOW
    + """
local key, outcome, probe = KEYS[1], ARGV[1], ARGV[2] == '1'
local max_failures, open_ms, max_probes, ttl =
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local s = redis.call('HMGET', key, 'state', 'until', 'probes', 'successes', 'failures')
local state = s[1] or 'closed'
local function open_from(previous)
  redis.call('DEL', key)
  redis.call('HSET', key, 'state', 'open', 'until', now + open_ms)
  redis.call('PEXPIRE', key, ttl)
  return {'open', 0, 0, open_ms, previous}
end
if state == 'closed' then
  if outcome == 'failure' then
    local failures = redis.call('HINCRBY', key, 'failures', 1)
    if failures >= max_failures then return open_from('closed') end
    redis.call('PEXPIRE', key, ttl)
  elseif outcome == 'success' and (tonumber(s[5]) or 0) > 0 then
    redis.call('DEL', key)
  end
  return {'closed', 1, 0, 0, ''}
end
if state == 'open' then
  return {'open', 0, 0, math.max((tonumber(s[2]) or 0) - now, 0), ''}
end
if outcome == 'failure' then return open_from('half_open') end
if probe then
  local probes = math.max((tonumber(s[3]) or 0) - 1, 0)
  if outcome == 'success' then
    local successes = (tonumber(s[4]) or 0) + 1
    if successes >= max_probes then
      redis.call('DEL', key)
      return {'closed', 1, 0, 0, 'half_open'}
    end
    redis.call('HSET', key, 'probes', probes, 'successes', successes)
  else
    redis.call('HSET', key, 'probes', probes)
  end
end
return {'half_open', 0, 0, 0, ''}
"""
)


def _verdict(reply: list[Any]) -> Verdict:
    state, allowed, probe, wait_ms, previous = reply
    text = previous.decode() if isinstance(previous, bytes) else str(previous)
    name = state.decode() if isinstance(state, bytes) else str(state)
    return Verdict(
        _NAMES[name],
        allowed=bool(allowed),
        probe=bool(probe),
        wait=int(wait_ms) / 1000,
        changed_from=_NAMES[text] if text else None,
    )


class RedisBreakerStore:
    """Breakers shared by every process through Redis; this process's own while it is away."""

    def __init__(
        self,
        redis: Redis,
        *,
        timeout: float = REDIS_TIMEOUT,
        retry_after: float = REDIS_RETRY_AFTER,
    ) -> None:
        self._redis = redis
        self._timeout = timeout
        self._retry_after = retry_after
        self._acquire = redis.register_script(_ACQUIRE)
        self._record = redis.register_script(_RECORD)
        self.local = LocalBreakerStore()
        self._away_until = 0.0  # while Redis is believed unreachable: decide locally until then

    @property
    def shared(self) -> bool:
        return time.monotonic() >= self._away_until

    async def acquire(self, key: str, policy: BreakerPolicy, lease: float) -> Verdict:
        args = [policy.half_open_probes, math.ceil(lease * 1000), KEY_TTL_MS]
        reply = await self._call(self._acquire, key, args)
        return _verdict(reply) if reply is not None else self.local.acquire_now(key, policy, lease)

    async def record(
        self, key: str, policy: BreakerPolicy, outcome: Outcome, probe: bool
    ) -> Verdict:
        args = [
            outcome, "1" if probe else "0", policy.failures,
            math.ceil(policy.open_seconds * 1000), policy.half_open_probes, KEY_TTL_MS,
        ]  # fmt: skip
        reply = await self._call(self._record, key, args)
        if reply is None:
            return self.local.record_now(key, policy, outcome, probe)
        return _verdict(reply)

    async def _call(self, script: Any, key: str, args: list[Any]) -> list[Any] | None:
        if not self.shared:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                reply: list[Any] = await script(keys=[key], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            if self._away_until == 0.0:
                log.warning(
                    "circuit breakers cannot reach Redis (%s); each process decides on its own "
                    "until it answers again",
                    exc or type(exc).__name__,
                )
            self._away_until = time.monotonic() + self._retry_after
            metrics.breaker_store_errors.inc()
            return None
        if self._away_until:
            log.warning("circuit breakers reach Redis again; their state is shared once more")
            self._away_until = 0.0
        return reply


@dataclass(frozen=True, slots=True)
class Permit:
    probe: bool


def breaker_key(config: ProviderConfig) -> str:
    """One breaker per engine endpoint: processes with the same configuration share it, and a
    provider id pointed somewhere else starts afresh."""
    where = hashlib.sha256((config.base_url or config.type).encode("utf-8")).hexdigest()[:12]
    return f"{KEY_PREFIX}:{config.id}:{where}"


class CircuitBreaker:
    def __init__(
        self,
        *,
        provider_id: str,
        key: str,
        policy: BreakerPolicy,
        lease: float,
        store: BreakerStore,
    ) -> None:
        self.provider_id = provider_id
        self.key = key
        self.policy = policy
        self.lease = lease
        self.store = store
        # Until when (monotonic) this process knows the breaker is open: refused with no I/O.
        self._open_until = 0.0
        self._settling: set[asyncio.Task[None]] = set()
        self._state_gauge = metrics.breaker_state.labels(provider_id)
        self._refusals = metrics.breaker_refusals.labels(provider_id)
        self._state_gauge.set(BreakerState.CLOSED)

    @classmethod
    def for_provider(cls, config: ProviderConfig, store: BreakerStore) -> CircuitBreaker:
        # A probe holds its slot at most as long as a whole call may take.
        lease = config.timeouts.total + (config.queue_timeout if config.type == "local" else 0)
        return cls(
            provider_id=config.id,
            key=breaker_key(config),
            policy=config.breaker,
            lease=lease,
            store=store,
        )

    async def admit(self) -> Permit | None:
        """Lets a call through (None when the breaker is disabled), or raises CircuitOpen."""
        if not self.policy.enabled:
            return None
        now = time.monotonic()
        if now < self._open_until:  # the fast path: no await, no I/O
            self._refusals.inc()
            raise self._refusal(self._open_until - now)
        verdict = await self.store.acquire(self.key, self.policy, self.lease)
        self._learn(verdict)
        if not verdict.allowed:
            self._refusals.inc()
            raise self._refusal(verdict.wait)
        return Permit(probe=verdict.probe)

    async def settle(self, permit: Permit | None, outcome: Outcome) -> None:
        """Reports how a call went; `permit` None for a later report on a call already settled
        (a failure mid-answer)."""
        if not self.policy.enabled or (outcome == "neutral" and not (permit and permit.probe)):
            return
        probe = bool(permit and permit.probe)
        self._learn(await self.store.record(self.key, self.policy, outcome, probe))

    def settle_soon(self, permit: Permit | None, outcome: Outcome) -> None:
        """`settle` from where nothing may be awaited (a call being cancelled)."""
        if not self.policy.enabled or (outcome == "neutral" and not (permit and permit.probe)):
            return
        try:
            task = asyncio.get_running_loop().create_task(self.settle(permit, outcome))
        except RuntimeError:  # no loop left (the process is ending): a probe's lease runs out
            return
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def _learn(self, verdict: Verdict) -> None:
        if verdict.state is BreakerState.OPEN:
            self._open_until = time.monotonic() + verdict.wait
        else:
            self._open_until = 0.0
        self._state_gauge.set(verdict.state)
        if verdict.changed_from is not None:
            metrics.breaker_transitions.labels(self.provider_id, verdict.state.name.lower()).inc()
            log.warning(
                "circuit breaker of engine %r: %s -> %s",
                self.provider_id,
                verdict.changed_from.name.lower(),
                verdict.state.name.lower(),
            )

    def _refusal(self, wait: float) -> CircuitOpen:
        seconds = max(math.ceil(wait), 1)
        return CircuitOpen(
            f"engine {self.provider_id!r} is failing; calls to it are paused (circuit breaker "
            f"open, next try in about {seconds}s)",
            headers={"Retry-After": str(seconds)},
        )
