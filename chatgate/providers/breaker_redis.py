"""The circuit breaker's state in Redis, shared by every process: atomic Lua on Redis's own
clock. When Redis cannot be reached, each process falls back to its own state until Redis
answers again (logged once per outage)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatgate.core.policies import BreakerPolicy
from chatgate.observability import metrics
from chatgate.providers.breaker import (
    BreakerState,
    LocalBreakerStore,
    Outcome,
    Verdict,
)

log = logging.getLogger("chatgate.providers.breaker")
KEY_TTL_MS = 24 * 3600 * 1000  # a breaker left alone for a day is closed, with nothing to keep
REDIS_TIMEOUT = 0.25  # seconds a breaker waits for Redis before deciding on its own
REDIS_RETRY_AFTER = 5.0  # seconds between tries to reach Redis again after it failed
_NAMES = {state.name.lower(): state for state in BreakerState}


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
