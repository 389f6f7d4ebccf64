"""Retries and the circuit breaker around each engine.

An engine is wrapped as breaker(observed(retrying(engine))): a call refused by an open breaker
never reaches the engine nor its call metrics; a call that is tried again is one call in the
metrics (with chatgate_engine_retries_total counting the tries) and one outcome for the breaker.

Retries happen only before the first chunk: text that reached a client is never asked for again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from email.utils import parsedate_to_datetime
from typing import cast

from chatgate.core.config import ProviderConfig
from chatgate.core.policies import RetryPolicy
from chatgate.observability import metrics
from chatgate.providers.base import (
    Chunk,
    CompletionRequest,
    Provider,
    ProviderError,
    ProviderRateLimited,
    WrappedProvider,
)
from chatgate.providers.breaker import CircuitBreaker, Outcome

log = logging.getLogger("chatgate.providers.resilient")

# Codes that say the engine (or the way to it) is in trouble, not that it judged the request.
TROUBLE_CODES = frozenset(
    {"upstream_error", "upstream_unavailable", "upstream_timeout", "upstream_overloaded"}
)
RETRYABLE_CODES = TROUBLE_CODES | {"upstream_rate_limited"}


def closing(chunks: AsyncIterator[Chunk]) -> aclosing[AsyncGenerator[Chunk, None]]:
    """An engine's stream, closed however its reader ends, not whenever it is collected
    (engines' streams are async generators)."""
    return aclosing(cast(AsyncGenerator[Chunk, None], chunks))


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def retry_delay(
    error: ProviderError, retry: int, policy: RetryPolicy, rng: random.Random
) -> float | None:
    """Seconds to wait before retry number `retry` (0 for the first), or None not to retry.

    Exponential backoff with full jitter (a uniform wait up to the doubled step), so processes
    that failed together do not come back together; a 429 waits what its Retry-After asks,
    and is not retried when that is longer than max_backoff.
    """
    if error.code not in RETRYABLE_CODES:
        return None
    if isinstance(error, ProviderRateLimited):
        asked = retry_after_seconds(error.headers.get("Retry-After"))
        if asked is not None:
            return asked if asked <= policy.max_backoff else None
    return rng.uniform(0, min(policy.max_backoff, policy.backoff * 2**retry))


def breaker_outcome(error: ProviderError) -> Outcome:
    """A failure for the breaker is engine trouble; a 429 or a full local queue says nothing
    about its health; any other answer (a refusal of the request) shows it is up."""
    if error.code in TROUBLE_CODES:
        return "failure"
    if isinstance(error, ProviderRateLimited) or error.code == "engine_busy":
        return "neutral"
    return "success"


class RetryingProvider(WrappedProvider):
    def __init__(self, inner: Provider, config: ProviderConfig, *, rng: random.Random) -> None:
        super().__init__(inner)
        self.config = config
        self._rng = rng

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        policy = self.config.retries
        loop = asyncio.get_running_loop()
        # Retries start only while the call's total time lasts.
        give_up_at = loop.time() + self.config.timeouts.total
        retry = 0
        while True:
            started = False
            try:
                async with closing(self.inner.stream(request)) as chunks:
                    async for chunk in chunks:
                        started = True
                        yield chunk
                return
            except ProviderError as exc:
                if started or retry >= policy.attempts:
                    raise
                delay = retry_delay(exc, retry, policy, self._rng)
                if delay is None or loop.time() + delay >= give_up_at:
                    raise
                retry += 1
                metrics.engine_retries.labels(self.id, exc.code).inc()
                log.info(
                    "engine %r failed before answering (%s); try %d in %.2fs",
                    self.id, exc.code, retry + 1, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)


class BreakerProvider(WrappedProvider):
    """Refuses calls while the engine's breaker is open, and tells the breaker how calls went:
    a call counts as a success from its first chunk, so a probe settles as soon as the engine
    shows it answers; a failure later in the answer still counts against the engine."""

    def __init__(self, inner: Provider, breaker: CircuitBreaker) -> None:
        super().__init__(inner)
        self.breaker = breaker

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Chunk]:
        breaker = self.breaker
        permit = await breaker.admit()
        settled = False
        try:
            async with closing(self.inner.stream(request)) as chunks:
                async for chunk in chunks:
                    if not settled:
                        settled = True
                        await breaker.settle(permit, "success")
                    yield chunk
        except ProviderError as exc:
            outcome = breaker_outcome(exc)
            if not settled:
                settled = True
                await breaker.settle(permit, outcome)
            elif outcome == "failure":
                await breaker.settle(None, "failure")
            raise
        except BaseException:  # cancelled, the consumer went away, or a bug
            if not settled:
                settled = True
                breaker.settle_soon(permit, "neutral")
            raise
        if not settled:  # an answer with no chunk at all: the engine did answer
            await breaker.settle(permit, "success")
