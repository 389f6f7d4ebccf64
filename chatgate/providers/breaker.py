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
from typing import Literal, Protocol

from chatgate.core.config import ProviderConfig
from chatgate.core.policies import BreakerPolicy
from chatgate.observability import metrics
from chatgate.providers.base import ProviderUnavailable

log = logging.getLogger("chatgate.providers.breaker")

Outcome = Literal["success", "failure", "neutral"]
KEY_PREFIX = "chatgate:breaker"


class BreakerState(enum.IntEnum):
    """The values of the chatgate_breaker_state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


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
