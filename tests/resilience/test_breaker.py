"""The circuit breaker: it opens after N failures in a row and then refuses at once without
calling the engine; half-open probes close it when the engine is back; processes sharing Redis
share it; with Redis unreachable each process decides alone."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from chatgate.core.config import ProviderConfig
from chatgate.core.policies import BreakerPolicy
from chatgate.providers.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    LocalBreakerStore,
    breaker_key,
)
from chatgate.providers.breaker_redis import RedisBreakerStore
from tests.conftest import assert_error, open_caller
from tests.doubles.server import free_port
from tests.resilience.conftest import (
    REDIS_URL,
    Engine,
    ask,
    assistant_on,
    engine_config,
    eventually,
    gateway_settings,
    metric,
    scrape,
    unique,
)
from tests.runner import run_chatgate

POLICY = BreakerPolicy(failures=3, open_seconds=1.0, half_open_probes=1)


@contextmanager
def gateways(
    engine: Engine, database: Path, *, count: int = 1, redis_url: str | None = None
) -> Iterator[tuple[ProviderConfig, list[str]]]:
    """`count` chatgates with one breaker-guarded engine (no retries: one call, one request)."""
    provider = engine_config(unique("fragile"), engine.url, breaker=POLICY)
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{database}",
        [provider],
        [assistant_on("fragile", provider.id)],
        redis_url=redis_url,
    )
    with run_chatgate(settings) as first:
        if count == 1:
            yield provider, [first]
            return
        with run_chatgate(settings) as second:
            yield provider, [first, second]


async def chat_completion(
    http: httpx.AsyncClient, content: str = "hi", *, stream: bool = False
) -> httpx.Response:
    body = {"model": "fragile", "messages": [{"role": "user", "content": content}]}
    return await http.post("/v1/chat/completions", json={**body, "stream": stream})


async def open_it(http: httpx.AsyncClient, engine: Engine) -> None:
    engine.api.failing(500)
    for _ in range(POLICY.failures):
        _, response = await ask(http, "fragile", "are you there?")
        assert_error(response, 502, "upstream_error")


async def test_opens_after_n_failures_then_refuses_without_calling_the_engine(
    engine: Engine, tmp_path: Path
) -> None:
    with gateways(engine, tmp_path / "db") as (provider, [url]):
        async with open_caller(url) as carol:
            await open_it(carol.http, engine)
            assert engine.api.calls == POLICY.failures
            session, refused = await ask(carol.http, "fragile", "and now?")
            body = assert_error(refused, 503, "upstream_circuit_open")
            assert int(refused.headers["retry-after"]) >= 1
            assert body["message"]["status"] == "failed"
            stored = (await carol.history(session["id"]))["data"][1]
            assert stored["error"]["code"] == "upstream_circuit_open"
            # Refused whole requests (HTTP, auth, catalog included) are quick: no engine, no wait.
            took = []
            for _ in range(20):
                start = time.perf_counter()
                response = await chat_completion(carol.http)
                took.append(time.perf_counter() - start)
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "upstream_circuit_open"
            median = statistics.median(took)
            print(f"\nrefused HTTP request (OpenAI front): median {median * 1e3:.2f} ms")
            assert median < 0.1
            assert engine.api.calls == POLICY.failures
            samples = await scrape(carol.http)
            labels = {"provider": provider.id}
            assert metric(samples, "chatgate_breaker_state", **labels) == BreakerState.OPEN
            assert metric(samples, "chatgate_breaker_transitions_total", **labels, to="open") == 1
            assert metric(samples, "chatgate_breaker_refusals_total", **labels) == 21


async def test_a_success_in_between_starts_the_count_again(engine: Engine, tmp_path: Path) -> None:
    with gateways(engine, tmp_path / "db") as (_, [url]):
        async with open_caller(url) as carol:
            for _ in range(3):
                engine.api.fail_next = POLICY.failures - 1
                for _ in range(POLICY.failures - 1):
                    assert (await chat_completion(carol.http)).status_code == 502
                assert (await chat_completion(carol.http)).status_code == 200
            assert engine.api.calls == 3 * POLICY.failures


async def test_a_probe_closes_it_when_the_engine_is_back(engine: Engine, tmp_path: Path) -> None:
    with gateways(engine, tmp_path / "db") as (provider, [url]):
        async with open_caller(url) as carol:
            await open_it(carol.http, engine)
            engine.api.healthy()  # back, but the breaker does not know yet
            assert (await chat_completion(carol.http)).status_code == 503
            assert engine.api.calls == POLICY.failures
            await asyncio.sleep(POLICY.open_seconds + 0.1)
            _, probe = await ask(carol.http, "fragile", "better now?")
            assert probe.status_code == 200, probe.text
            assert probe.json()["message"]["content"] == "echo: better now?"
            for _ in range(3):
                assert (await chat_completion(carol.http)).status_code == 200
            samples = await scrape(carol.http)
            labels = {"provider": provider.id}
            assert metric(samples, "chatgate_breaker_state", **labels) == BreakerState.CLOSED
            for state in ("open", "half_open", "closed"):
                assert (
                    metric(samples, "chatgate_breaker_transitions_total", **labels, to=state) == 1
                )


async def test_a_failed_probe_opens_it_again(engine: Engine, tmp_path: Path) -> None:
    with gateways(engine, tmp_path / "db") as (provider, [url]):
        async with open_caller(url) as carol:
            await open_it(carol.http, engine)
            await asyncio.sleep(POLICY.open_seconds + 0.1)
            assert (await chat_completion(carol.http)).status_code == 502  # the probe
            assert engine.api.calls == POLICY.failures + 1
            refused = await chat_completion(carol.http)
            assert refused.json()["error"]["code"] == "upstream_circuit_open"
            assert engine.api.calls == POLICY.failures + 1
            samples = await scrape(carol.http)
            labels = {"provider": provider.id}
            assert metric(samples, "chatgate_breaker_transitions_total", **labels, to="open") == 2


async def test_half_open_lets_only_its_probes_through(engine: Engine, tmp_path: Path) -> None:
    with gateways(engine, tmp_path / "db") as (_, [url]):
        async with open_caller(url) as carol:
            await open_it(carol.http, engine)
            engine.api.healthy()
            await asyncio.sleep(POLICY.open_seconds + 0.1)
            # The probe's first word comes after 1.5 s; while it is out the others are turned away.
            probe = asyncio.create_task(chat_completion(carol.http, "[[slow 2 1.5]]", stream=True))
            await eventually(lambda: engine.api.calls == POLICY.failures + 1, "the probe")
            others = await asyncio.gather(*(chat_completion(carol.http) for _ in range(4)))
            assert probe.done() is False
            for refused in others:
                assert refused.json()["error"]["code"] == "upstream_circuit_open", refused.text
            assert (await probe).status_code == 200
            assert engine.api.calls == POLICY.failures + 1
            assert (await chat_completion(carol.http)).status_code == 200


async def test_processes_sharing_redis_share_one_breaker(engine: Engine, tmp_path: Path) -> None:
    with gateways(engine, tmp_path / "db", count=2, redis_url=REDIS_URL) as (provider, urls):
        async with open_caller(urls[0]) as alice, open_caller(urls[1]) as bob:
            engine.api.failing(500)
            # Failures in a row, whichever process saw them: two here, one there.
            for http in (alice.http, alice.http, bob.http):
                assert (await chat_completion(http)).status_code == 502
            redis = Redis.from_url(REDIS_URL)
            try:
                stored = await redis.hgetall(breaker_key(provider))
                assert stored[b"state"] == b"open"
                # Both refuse now, the one that never saw it open as well as the other.
                for http in (bob.http, alice.http, bob.http):
                    refused = await chat_completion(http)
                    assert refused.json()["error"]["code"] == "upstream_circuit_open"
                assert engine.api.calls == POLICY.failures
                engine.api.healthy()
                await asyncio.sleep(POLICY.open_seconds + 0.1)
                assert (await chat_completion(bob.http)).status_code == 200  # bob's probe
                assert await redis.exists(breaker_key(provider)) == 0  # closed: nothing kept
                assert (await chat_completion(alice.http)).status_code == 200
                assert engine.api.calls == POLICY.failures + 2
            finally:
                await redis.delete(breaker_key(provider))
                await redis.aclose()


def _breaker(store: Any, key: str, policy: BreakerPolicy = POLICY) -> CircuitBreaker:
    return CircuitBreaker(
        provider_id=key.rsplit(":", 1)[-1], key=key, policy=policy, lease=5.0, store=store
    )


async def _time_refusals(breaker: CircuitBreaker, count: int) -> list[float]:
    took = []
    for _ in range(count):
        start = time.perf_counter()
        try:
            await breaker.admit()
        except CircuitOpen:
            took.append(time.perf_counter() - start)
    assert len(took) == count
    return took


def _report(what: str, took: list[float]) -> None:
    took = sorted(took)
    mean, p99 = statistics.fmean(took), took[int(len(took) * 0.99)]
    print(
        f"\n{what}: mean {mean * 1e6:.1f} µs, p99 {p99 * 1e6:.1f} µs, max {took[-1] * 1e6:.1f} µs"
    )
    assert mean < 0.001 and p99 < 0.001  # "within a millisecond"


async def test_an_open_breaker_refuses_within_a_millisecond() -> None:
    local = _breaker(LocalBreakerStore(), f"chatgate:test-breaker:{unique('local')}")
    for _ in range(POLICY.failures):
        await local.settle(await local.admit(), "failure")
    _report("refusal, in-process breaker", await _time_refusals(local, 20_000))

    key = f"chatgate:test-breaker:{unique('shared')}"
    one, other = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    try:
        opener = _breaker(RedisBreakerStore(one), key)
        for _ in range(POLICY.failures):
            await opener.settle(await opener.admit(), "failure")
        # Another process's breaker: its first refusal asks Redis, the rest need no round trip.
        elsewhere = _breaker(RedisBreakerStore(other), key)
        await other.ping()  # its connection is open already, as in a process that has run a while
        first = await _time_refusals(elsewhere, 1)
        print(f"\nfirst refusal in another process (a Redis round trip): {first[0] * 1e6:.0f} µs")
        _report("refusal, Redis-shared breaker", await _time_refusals(elsewhere, 20_000))
    finally:
        await one.delete(key)
        await one.aclose()
        await other.aclose()


@asynccontextmanager
async def redis_proxy(port: int) -> AsyncIterator[None]:
    """Redis reachable on `port` for as long as this lasts: bytes relayed both ways."""

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", 6379)
        await asyncio.gather(relay(client_r, redis_w), relay(redis_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_with_redis_unreachable_each_process_decides_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there yet: Redis refuses connections
    redis = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    store = RedisBreakerStore(redis, retry_after=0.3)
    policy = BreakerPolicy(failures=2, open_seconds=0.5)
    key = f"chatgate:test-breaker:{unique('unreachable')}"
    breaker = _breaker(store, key, policy)
    caplog.set_level(logging.WARNING, logger="chatgate.providers.breaker")
    try:
        start = time.perf_counter()
        for _ in range(policy.failures):
            await breaker.settle(await breaker.admit(), "failure")
        assert time.perf_counter() - start < 0.5  # no waiting on a Redis that is not there
        assert not store.shared
        for _ in range(5):
            with pytest.raises(CircuitOpen):
                await breaker.admit()
        await asyncio.sleep(0.4)  # past the retry interval: it tries Redis again, still away
        await store.record(key, policy, "failure", False)
        outages = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
        assert len(outages) == 1  # logged once for the outage, not once a call

        async with redis_proxy(port):  # Redis is back
            await asyncio.sleep(max(policy.open_seconds, 0.3) + 0.1)
            # Redis never saw those failures: its state (closed) is the truth again.
            assert await breaker.admit() is not None
            assert store.shared
            back = [r for r in caplog.records if "reach Redis again" in r.getMessage()]
            assert len(back) == 1
            assert breaker.store is store and store.local.circuits[key].state is BreakerState.OPEN
    finally:
        await redis.aclose()
