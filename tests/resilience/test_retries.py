"""Retries before the first byte only, with exponential backoff and full jitter: engines that
answer 5xx or 429, refuse connections, or die mid-answer."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatgate.core.engine_config import Timeouts
from chatgate.core.policies import RetryPolicy
from chatgate.providers.base import ProviderError, ProviderRateLimited, ProviderTimeout
from chatgate.providers.resilient import retry_after_seconds, retry_delay
from tests.conftest import Caller, assert_error, open_caller, parse_sse
from tests.doubles.server import free_port, serve_app
from tests.resilience.conftest import (
    ask,
    assistant_on,
    engine_config,
    gateway_settings,
    metric,
    scrape,
    unique,
)
from tests.resilience.engines import SwitchableEngine
from tests.runner import run_chatgate

RETRIES = RetryPolicy(attempts=2, backoff=0.05, max_backoff=1.0)


@dataclass
class Gateway:
    url: str
    engine: SwitchableEngine
    flaky: str  # the provider id of `engine`
    closed: str  # a provider on a port nobody listens on


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    engine = SwitchableEngine()
    database = Path(tmp_path_factory.mktemp("retries")) / "chatgate.db"
    flaky, closed = unique("flaky"), unique("closed")
    timeouts = Timeouts(connect=1, first_token=2, total=10)
    with serve_app(engine.app()) as url:
        providers = [
            engine_config(flaky, url, retries=RETRIES, timeouts=timeouts),
            engine_config(closed, f"http://127.0.0.1:{free_port()}", retries=RETRIES),
        ]
        assistants = [assistant_on("flaky", flaky), assistant_on("closed", closed)]
        settings = gateway_settings(f"sqlite+aiosqlite:///{database}", providers, assistants)
        with run_chatgate(settings) as gateway_url:
            yield Gateway(url=gateway_url, engine=engine, flaky=flaky, closed=closed)


@pytest.fixture
async def carol(gateway: Gateway) -> AsyncIterator[Caller]:
    gateway.engine.healthy()
    async with open_caller(gateway.url) as caller:
        yield caller


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_5xx_is_tried_again_up_to_the_limit(
    carol: Caller, gateway: Gateway, mode: str
) -> None:
    gateway.engine.failing(503)
    before, calls = await scrape(carol.http), gateway.engine.calls
    _, response = await ask(carol.http, "flaky", "hello?", mode)
    body = assert_error(response, 502, "upstream_error")
    assert body["message"]["status"] == "failed"
    assert gateway.engine.calls - calls == 1 + RETRIES.attempts
    after = await scrape(carol.http)
    retried = {"provider": gateway.flaky, "code": "upstream_error"}
    assert (
        metric(after, "chatgate_engine_retries_total", **retried)
        - metric(before, "chatgate_engine_retries_total", **retried)
        == RETRIES.attempts
    )
    # One call for the engine's own metrics, however many tries it took.
    engine = {"provider": gateway.flaky, "model": "double-model"}
    assert (
        metric(after, "chatgate_engine_requests_total", **engine)
        - metric(before, "chatgate_engine_requests_total", **engine)
        == 1
    )


async def test_a_retry_that_succeeds_gives_a_whole_answer(carol: Caller, gateway: Gateway) -> None:
    gateway.engine.status, gateway.engine.fail_next = 500, 2
    calls = gateway.engine.calls
    _, response = await ask(carol.http, "flaky", "third time lucky", "streaming")
    events = parse_sse(response.text)
    assert events[-1]["event"] == "message_end"
    assert events[-1]["data"]["message"]["content"] == "echo: third time lucky"
    assert events[-1]["data"]["message"]["status"] == "complete"
    assert gateway.engine.calls - calls == 3


async def test_429_waits_as_long_as_retry_after_asks(carol: Caller, gateway: Gateway) -> None:
    gateway.engine.failing(429, retry_after="1")
    gateway.engine.mode, gateway.engine.fail_next = "healthy", 1
    calls = gateway.engine.calls
    _, response = await ask(carol.http, "flaky", "patience")
    assert response.status_code == 200, response.text
    assert response.json()["message"]["content"] == "echo: patience"
    assert gateway.engine.calls - calls == 2
    assert 1.0 <= response.elapsed.total_seconds() < 2.5  # Retry-After, not the 0.05 s backoff


async def test_429_asking_longer_than_max_backoff_is_not_retried(
    carol: Caller, gateway: Gateway
) -> None:
    gateway.engine.failing(429, retry_after="30")
    calls = gateway.engine.calls
    _, response = await ask(carol.http, "flaky", "now please")
    assert response.elapsed.total_seconds() < 1.0
    assert_error(response, 429, "upstream_rate_limited")
    assert response.headers["retry-after"] == "30"  # the engine's own wish, passed on
    assert gateway.engine.calls - calls == 1


async def test_a_request_the_engine_refuses_is_not_retried(carol: Caller, gateway: Gateway) -> None:
    gateway.engine.failing(400)
    calls = gateway.engine.calls
    _, response = await ask(carol.http, "flaky", "malformed, says the engine")
    assert_error(response, 502, "upstream_rejected")
    assert gateway.engine.calls - calls == 1


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_an_engine_dying_after_the_first_byte_is_never_retried(
    carol: Caller, gateway: Gateway, mode: str
) -> None:
    marker = uuid.uuid4().hex
    calls = gateway.engine.calls
    session, response = await ask(carol.http, "flaky", f"[[die-after 3]] {marker}", mode)
    if mode == "streaming":
        body = parse_sse(response.text)[-1]["data"]
    else:
        assert response.status_code == 502, response.text
        body = response.json()
    assert body["error"]["code"] == "upstream_error"
    assert body["message"]["status"] == "failed"
    assert body["message"]["content"] == "w0 w1 w2 "
    assert gateway.engine.calls - calls == 1
    stored = (await carol.history(session["id"]))["data"][1]
    assert stored["status"] == "failed" and stored["content"] == "w0 w1 w2 "


async def test_refused_connections_are_retried_then_503(carol: Caller, gateway: Gateway) -> None:
    before = await scrape(carol.http)
    _, response = await ask(carol.http, "closed", "is anybody there?")
    assert_error(response, 503, "upstream_unavailable")
    after = await scrape(carol.http)
    retried = {"provider": gateway.closed, "code": "upstream_unavailable"}
    assert (
        metric(after, "chatgate_engine_retries_total", **retried)
        - metric(before, "chatgate_engine_retries_total", **retried)
        == RETRIES.attempts
    )


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(attempts=5, backoff=0.1, max_backoff=0.5)
    rng = random.Random(7)
    error = ProviderError("engine 'x' answered 500")
    for retry, cap in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        delays = [retry_delay(error, retry, policy, rng) for _ in range(2000)]
        assert all(d is not None and 0 <= d <= cap for d in delays)
        mean = sum(d for d in delays if d is not None) / len(delays)
        assert cap * 0.45 < mean < cap * 0.55  # uniform over [0, cap]: jitter, not a fixed step
    assert retry_delay(ProviderTimeout("slow"), 0, policy, rng) is not None
    assert retry_delay(ProviderError("no", code="upstream_rejected"), 0, policy, rng) is None
    # A 429 waits what it asks (however many retries came before), unless that is too long.
    soon = ProviderRateLimited("429", headers={"Retry-After": "0.3"})
    assert retry_delay(soon, 3, policy, rng) == 0.3
    later = ProviderRateLimited("429", headers={"Retry-After": "9"})
    assert retry_delay(later, 0, policy, rng) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None
