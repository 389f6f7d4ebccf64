"""The tokens-per-minute limit holds on `/v1/chat/completions` as on the session route: checked
before the engine is called, charged with the usage after, streamed or not; and it is one budget
per user and assistant whichever route spends it."""

from __future__ import annotations

import secrets

import httpx
import pytest

from chatgate.core.policies import RateLimitSettings
from tests.conftest import Double, make_token, settings_for
from tests.runner import run_chatgate

URL = "/v1/chat/completions"
# About 60 tokens of question, so a call with its echoed answer uses about 125.
QUESTION = " ".join(f"word{i}" for i in range(60))


def caller(url: str, user: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=30)


@pytest.mark.parametrize("stream", [False, True])
async def test_completions_keep_the_token_limit(
    database_url: str, openai_double: Double, stream: bool
) -> None:
    limits = RateLimitSettings(tokens_per_minute=300)
    body = {"model": "echo", "messages": [{"role": "user", "content": QUESTION}], "stream": stream}
    user = f"lane-tokens-{secrets.token_hex(4)}"
    with run_chatgate(settings_for(database_url, openai_double.url, rate_limits=limits)) as url:
        async with caller(url, user) as http:
            responses = [await http.post(URL, json=body) for _ in range(10)]
            elsewhere = await http.post(URL, json={**body, "model": "support"})
    statuses = [r.status_code for r in responses]
    assert statuses[:2] == [200, 200], [r.text for r in responses[:2]]
    assert 429 in statuses[2:4], statuses  # the session route refuses from the 3rd or 4th too
    refused = responses[statuses.index(429)]
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("tokens_rate_limited", "rate_limit_error")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert statuses[statuses.index(429) :] == [429] * (10 - statuses.index(429))
    assert elsewhere.status_code == 200  # per assistant, as on the session route


async def test_one_budget_for_the_session_route_and_the_lane(
    database_url: str, openai_double: Double
) -> None:
    limits = RateLimitSettings(tokens_per_minute=300)
    user = f"both-routes-{secrets.token_hex(4)}"
    with run_chatgate(settings_for(database_url, openai_double.url, rate_limits=limits)) as url:
        async with caller(url, user) as http:
            body = {"model": "echo", "messages": [{"role": "user", "content": QUESTION}]}
            spent = [(await http.post(URL, json=body)).status_code for _ in range(2)]
            session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
            # Spent on the lane, refused on the session route (its estimate is its own message).
            refused = await http.post(
                f"/v1/sessions/{session['id']}/messages", json={"content": QUESTION}
            )
    assert spent == [200, 200]
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "tokens_rate_limited"
