"""Rate limits per user or key, per IP and tokens per minute; shared through Redis; and what
happens when Redis really stops."""

from __future__ import annotations

import secrets

import httpx

from chatgate.core.policies import RateLimitSettings
from tests.conftest import Double, PrivateRedis, make_token, settings_for
from tests.runner import run_chatgate


def caller(url: str, user: str | None = None) -> httpx.AsyncClient:
    token = make_token(user or f"limited-{secrets.token_hex(4)}")
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def test_requests_per_user_give_429_with_headers(
    database_url: str, openai_double: Double
) -> None:
    limits = RateLimitSettings(requests_per_minute=5, ip_requests_per_minute=1000)
    with run_chatgate(settings_for(database_url, openai_double.url, rate_limits=limits)) as url:
        async with caller(url) as first, caller(url) as second:
            statuses = [(await first.get("/v1/assistants")).status_code for _ in range(5)]
            refused = await first.get("/v1/assistants")
            other = await second.get("/v1/assistants")
    assert statuses == [200] * 5
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "5"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["ratelimit-reset"]) >= 1
    assert other.status_code == 200


async def test_requests_per_ip(database_url: str, openai_double: Double) -> None:
    limits = RateLimitSettings(requests_per_minute=1000, ip_requests_per_minute=4)
    with run_chatgate(settings_for(database_url, openai_double.url, rate_limits=limits)) as url:
        statuses = []
        for _ in range(5):
            async with caller(url) as someone:  # a new user each time, all from 127.0.0.1
                statuses.append((await someone.get("/v1/assistants")).status_code)
    assert statuses == [200, 200, 200, 200, 429]


async def test_limits_are_shared_by_processes_through_redis(
    database_url: str, openai_double: Double
) -> None:
    limits = RateLimitSettings(requests_per_minute=6, ip_requests_per_minute=1000)
    settings = settings_for(database_url, openai_double.url, rate_limits=limits,
                            redis_url="redis://127.0.0.1:6379/0")  # fmt: skip
    user = f"shared-{secrets.token_hex(4)}"
    with run_chatgate(settings) as a, run_chatgate(settings) as b:
        async with caller(a, user) as on_a, caller(b, user) as on_b:
            statuses = []
            for _ in range(3):
                statuses.append((await on_a.get("/v1/assistants")).status_code)
                statuses.append((await on_b.get("/v1/assistants")).status_code)
            last = await on_b.get("/v1/assistants")
    assert statuses == [200] * 6
    assert last.status_code == 429


async def test_tokens_per_minute_per_assistant(database_url: str, openai_double: Double) -> None:
    limits = RateLimitSettings(tokens_per_minute=60)
    with run_chatgate(settings_for(database_url, openai_double.url, rate_limits=limits)) as url:
        async with caller(url) as user:
            echo = (await user.post("/v1/sessions", json={"assistant_id": "echo"})).json()
            support = (await user.post("/v1/sessions", json={"assistant_id": "support"})).json()
            big = await user.post(
                f"/v1/sessions/{echo['id']}/messages", json={"content": "[[slow 80 0]]"}
            )
            assert big.status_code == 200  # within budget when it started; its 80+ tokens count
            refused = await user.post(
                f"/v1/sessions/{echo['id']}/messages", json={"content": "more"}
            )
            elsewhere = await user.post(
                f"/v1/sessions/{support['id']}/messages", json={"content": "hi"}
            )
            history = (await user.get(f"/v1/history/{echo['id']}")).json()["data"]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "tokens_rate_limited"
    assert "retry-after" in refused.headers
    assert elsewhere.status_code == 200
    assert len(history) == 2  # the refused message was not stored


async def test_redis_down_fails_open_when_told(
    database_url: str, openai_double: Double, private_redis: PrivateRedis
) -> None:
    limits = RateLimitSettings(requests_per_minute=3, on_redis_error="open")
    settings = settings_for(database_url, openai_double.url, rate_limits=limits,
                            redis_url=private_redis.url)  # fmt: skip
    with run_chatgate(settings) as url:
        async with caller(url) as user:
            assert [(await user.get("/v1/assistants")).status_code for _ in range(4)] == [
                200, 200, 200, 429,
            ]  # fmt: skip
            private_redis.stop()
            after = [(await user.get("/v1/assistants")).status_code for _ in range(3)]
            metrics = (await user.get("/metrics")).text
    assert after == [200, 200, 200]
    errors = [line for line in metrics.splitlines()
              if line.startswith("chatgate_rate_limit_storage_errors_total ")]  # fmt: skip
    assert errors and float(errors[0].split()[1]) >= 3


async def test_redis_down_fails_closed_when_told(
    database_url: str, openai_double: Double, private_redis: PrivateRedis
) -> None:
    limits = RateLimitSettings(on_redis_error="closed")
    settings = settings_for(database_url, openai_double.url, rate_limits=limits,
                            redis_url=private_redis.url)  # fmt: skip
    with run_chatgate(settings) as url:
        async with caller(url) as user:
            assert (await user.get("/v1/assistants")).status_code == 200
            private_redis.stop()
            refused = await user.get("/v1/assistants")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "rate_limiter_unavailable"
