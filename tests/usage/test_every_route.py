"""The done-when of the usage ledger: a scripted run across every route and dialect (chatgate's
own turns streamed and blocking, OpenAI's chat completions streamed and not, Responses,
Anthropic's Messages, /v1/qa, embeddings, a fallback from a failing engine, a cached answer, a
call with an API key), after which `GET /v1/admin/usage` says exactly what the engine doubles
themselves counted, call by call, and names each call's route, engine, key and fallback."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.core.config import AssistantConfig, PriceConfig, ProviderConfig
from chatgate.core.engine_config import Timeouts
from chatgate.providers.base import estimate_tokens
from chatgate.usage.models import UsageRecord
from tests.conftest import GUARDS_OFF, make_token, parse_sse, settings_for
from tests.doubles.anthropic_api import AnthropicDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import free_port, serve_app
from tests.runner import run_chatgate

TIMEOUTS = Timeouts(connect=2, first_token=5, total=30)
PRICES = {
    "gpt-model": PriceConfig(input_per_million=100.0, output_per_million=400.0),
    "claude-model": PriceConfig(input_per_million=300.0, output_per_million=1500.0),
}


@dataclass
class Run:
    url: str
    database_url: str
    openai: OpenAIDouble
    anthropic: AnthropicDouble
    quiet: OpenAIDouble  # reports no usage: chatgate counts its calls itself


def _assistant(assistant_id: str, provider: str, model: str, **fields: Any) -> AssistantConfig:
    return AssistantConfig(
        id=assistant_id, name=assistant_id, provider=provider, model=model, guards=GUARDS_OFF,
        system_prompt=f"You are {assistant_id}.", max_context_tokens=8000, max_answer_tokens=200,
        **fields,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    os.environ.update(USAGE_OPENAI_KEY="sk-openai", USAGE_ANTHROPIC_KEY="sk-ant")
    openai, anthropic = OpenAIDouble(api_key="sk-openai"), AnthropicDouble(api_key="sk-ant")
    quiet = OpenAIDouble(api_key="sk-openai", report_usage=False)
    database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('usage') / 'chatgate.db'}"
    with (
        serve_app(openai.app()) as openai_url,
        serve_app(anthropic.app()) as anthropic_url,
        serve_app(quiet.app()) as quiet_url,
    ):
        providers = [
            ProviderConfig(id="openai", type="openai", base_url=f"{openai_url}/v1",
                           api_key_env="USAGE_OPENAI_KEY", timeouts=TIMEOUTS),
            ProviderConfig(id="anthropic", type="anthropic", base_url=anthropic_url,
                           api_key_env="USAGE_ANTHROPIC_KEY", timeouts=TIMEOUTS),
            ProviderConfig(id="quiet", type="openai", base_url=f"{quiet_url}/v1",
                           api_key_env="USAGE_OPENAI_KEY", timeouts=TIMEOUTS),
            # Nothing listens there: every call fails before any text, and the chain moves on.
            ProviderConfig(id="broken", type="openai",
                           base_url=f"http://127.0.0.1:{free_port()}/v1",
                           api_key_env="USAGE_OPENAI_KEY", timeouts=TIMEOUTS),
        ]  # fmt: skip
        assistants = [
            _assistant("gpt", "openai", "gpt-model"),
            _assistant("claude", "anthropic", "claude-model"),
            _assistant("fall", "broken", "gpt-model", fallback_providers=["openai"]),
            _assistant("hushed", "quiet", "quiet-model"),
        ]
        settings = settings_for(
            database_url, openai_url, providers=providers, assistants=assistants, prices=PRICES
        )
        with run_chatgate(settings) as url:
            yield Run(url, database_url, openai, anthropic, quiet)


def client(run: Run, user: str, *, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token or make_token(user)}"}
    return httpx.AsyncClient(base_url=run.url, headers=headers, timeout=30)


def served(run: Run) -> int:
    """Every token the doubles' own answers reported, prompt and answer."""
    return sum(run.openai.served[k] for k in ("prompt", "completion")) + sum(
        run.anthropic.served.values()
    )


async def chat_turn(http: httpx.AsyncClient, assistant: str, content: str, mode: str) -> None:
    session = (await http.post("/v1/sessions", json={"assistant_id": assistant})).json()
    body = {"content": content, "response_mode": mode}
    response = await http.post(f"/v1/sessions/{session['id']}/messages", json=body)
    assert response.status_code == 200, response.text
    if mode == "streaming":
        assert parse_sse(response.text)[-1]["event"] == "message_end", response.text
    else:
        assert response.json()["message"]["status"] == "complete", response.text


async def chat_completion(
    http: httpx.AsyncClient, content: str, *, stream: bool, model: str = "gpt"
) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert "data: [DONE]" in response.text if stream else response.json()["choices"]


async def test_usage_equals_what_the_engines_counted_on_every_route(run: Run) -> None:
    nonce = secrets.token_hex(4)
    users = {name: f"{name}-{nonce}" for name in (
        "chat_stream", "chat_block", "cc_stream", "cc_block", "responses", "messages", "qa",
        "embeddings", "fallback", "cached", "keyed",
    )}  # fmt: skip
    expected: dict[str, int] = {}  # tokens per user, as the engines counted them
    embedded = 0

    async def scenario(name: str, call: Any) -> None:
        before = served(run)
        async with client(run, users[name]) as http:
            await call(http)
        expected[name] = served(run) - before

    await scenario("chat_stream", lambda h: chat_turn(h, "gpt", f"one {nonce}", "streaming"))
    await scenario("chat_block", lambda h: chat_turn(h, "gpt", f"two {nonce}", "blocking"))
    await scenario("cc_stream", lambda h: chat_completion(h, f"three {nonce}", stream=True))
    await scenario("cc_block", lambda h: chat_completion(h, f"four {nonce}", stream=False))

    async def responses(http: httpx.AsyncClient) -> None:
        response = await http.post("/v1/responses", json={"model": "gpt", "input": f"5 {nonce}"})
        assert response.status_code == 200, response.text

    async def messages(http: httpx.AsyncClient) -> None:
        body = {"model": "claude", "max_tokens": 100, "messages": [
            {"role": "user", "content": f"six {nonce} words here"}]}  # fmt: skip
        response = await http.post("/v1/messages", json=body)
        assert response.status_code == 200, response.text

    async def qa(http: httpx.AsyncClient) -> None:
        body = {"question": f"seven {nonce}", "assistant_id": "claude"}
        response = await http.post("/v1/qa", json=body)
        assert response.status_code == 200, response.text

    async def embeddings(http: httpx.AsyncClient) -> None:
        nonlocal embedded
        body = {"model": "local", "input": [f"eight {nonce}", "nine words to embed"]}
        response = await http.post("/v1/embeddings", json=body)
        assert response.status_code == 200, response.text
        # The bundled model's own tokenizer counted them: that is its usage.
        embedded = response.json()["usage"]["prompt_tokens"]
        assert embedded > 0

    async def cached(http: httpx.AsyncClient) -> None:
        for _ in range(2):  # the second is answered from the cache: no engine asked
            await chat_turn(http, "gpt", f"the same question {nonce}", "blocking")

    await scenario("responses", responses)
    await scenario("messages", messages)
    await scenario("qa", qa)
    await scenario("embeddings", embeddings)
    await scenario("fallback", lambda h: chat_turn(h, "fall", f"ten {nonce}", "blocking"))
    requests_before = len(run.openai.requests)
    await scenario("cached", cached)
    assert len(run.openai.requests) == requests_before + 1

    async with client(run, "admin", token=make_token(f"admin-{nonce}", admin=True)) as admin:
        key = await admin.post(
            "/v1/admin/keys", json={"name": "app", "kind": "user", "user_id": users["keyed"]}
        )
        assert key.status_code == 201, key.text
        before = served(run)
        async with client(run, "", token=key.json()["secret"]) as keyed:
            await chat_completion(keyed, f"eleven {nonce}", stream=False)
        expected["keyed"] = served(run) - before
        expected["embeddings"] = embedded
        assert all(tokens > 0 for name, tokens in expected.items()), expected

        by_user = await _settled(admin, users, nonce)
    stored = await _rows(run, list(users.values()))
    cached_rows = [r for r in stored[users["cached"]] if r.cached]
    (cached_row,) = cached_rows
    assert cached_row.engine is None and cached_row.cost == 0.0
    assert cached_row.model == "gpt-model" and cached_row.completion_tokens > 0
    expected["cached"] += cached_row.prompt_tokens + cached_row.completion_tokens

    for name, user in users.items():
        group = by_user[user]
        assert group["prompt_tokens"] + group["completion_tokens"] == expected[name], name
    # Every engine call is one request; the cached answer one more, counted as cached.
    assert by_user[users["cached"]]["requests"] == 2
    assert by_user[users["cached"]]["cached_requests"] == 1
    assert sum(g["prompt_tokens"] + g["completion_tokens"] for g in by_user.values()) == (
        served(run) + embedded + cached_row.prompt_tokens + cached_row.completion_tokens
    )

    routes = {name: {r.route for r in stored[users[name]]} for name in users}
    assert routes == {
        "chat_stream": {"chat"}, "chat_block": {"chat"}, "cc_stream": {"chat_completions"},
        "cc_block": {"chat_completions"}, "responses": {"responses"}, "messages": {"messages"},
        "qa": {"qa"}, "embeddings": {"embeddings"}, "fallback": {"chat"}, "cached": {"chat"},
        "keyed": {"chat_completions"},
    }  # fmt: skip
    (fell,) = stored[users["fallback"]]
    assert fell.fallback and fell.engine == "openai" and fell.assistant_id == "fall"
    assert not any(r.fallback for name in users if name != "fallback" for r in stored[users[name]])
    (keyed_row,) = stored[users["keyed"]]
    assert keyed_row.key_id == key.json()["id"]
    (embedding_row,) = stored[users["embeddings"]]
    assert embedding_row.engine == "local" and embedding_row.completion_tokens == 0
    (claude_row,) = stored[users["messages"]]
    assert claude_row.engine == "anthropic" and claude_row.model == "claude-model"
    price = PRICES["claude-model"]
    assert claude_row.cost == pytest.approx(
        (claude_row.prompt_tokens * price.input_per_million
         + claude_row.completion_tokens * price.output_per_million) / 1e6
    )  # fmt: skip


async def test_an_engine_that_reports_no_usage_is_counted_by_chatgate(run: Run) -> None:
    user = f"quiet-{secrets.token_hex(4)}"
    async with client(run, user) as http:
        await chat_completion(http, "count these words for me", stream=False, model="hushed")
        await chat_completion(http, "and these ones too", stream=True, model="hushed")
    assert run.quiet.served == {"prompt": 0, "completion": 0, "embedding": 0}
    # The prompt as sent (its messages' text) and the answer, counted as the engine counts:
    # chatgate's estimate for an OpenAI-compatible engine.
    texts = ["\n".join(m["content"] for m in request["messages"]) for request in run.quiet.requests]
    answers = [f"echo: {words}" for words in ("count these words for me", "and these ones too")]
    async with client(run, "admin", token=make_token("quiet-admin", admin=True)) as admin:
        deadline = time.monotonic() + 15
        while True:
            groups = (
                await admin.get("/v1/admin/usage", params={"group_by": "user", "user_id": user})
            ).json()["data"]
            if groups and groups[0]["requests"] == 2:
                break
            assert time.monotonic() < deadline, groups
            await asyncio.sleep(0.2)
    (group,) = groups
    assert group["prompt_tokens"] == sum(estimate_tokens(t) for t in texts)
    assert group["completion_tokens"] == sum(estimate_tokens(a) for a in answers)


async def _settled(
    admin: httpx.AsyncClient, users: dict[str, str], nonce: str
) -> dict[str, dict[str, Any]]:
    """Usage by user once every scenario's calls are written (the ledger writes each second)."""
    deadline = time.monotonic() + 15
    while True:
        response = await admin.get("/v1/admin/usage", params={"group_by": "user"})
        assert response.status_code == 200, response.text
        by_user = {g["group"]: g for g in response.json()["data"] if nonce in (g["group"] or "")}
        if len(by_user) == len(users) and by_user[users["cached"]]["requests"] == 2:
            return by_user
        assert time.monotonic() < deadline, f"usage never settled: {sorted(by_user)}"
        await asyncio.sleep(0.2)


async def _rows(run: Run, users: list[str]) -> dict[str, list[UsageRecord]]:
    engine = create_async_engine(run.database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(select(UsageRecord).where(UsageRecord.user_id.in_(users)))
            rows: list[Any] = list(found)
    finally:
        await engine.dispose()
    return {user: [r for r in rows if r.user_id == user] for user in users}
