"""An assistant's fallback chain: the next engine, then the canned answer, marked as a fallback
in the response and in the stored message; in blocking, streaming, OpenAI and queued answers,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from chatgate.chat.models import Message
from chatgate.core.config import AssistantConfig
from chatgate.core.policies import BreakerPolicy, GuardPolicy
from tests.conftest import Caller, open_caller, parse_sse, read_database
from tests.doubles.server import serve_app
from tests.resilience.conftest import (
    BUSY,
    REDIS_URL,
    Engine,
    ask,
    assistant_on,
    engine_config,
    gateway_settings,
    metric,
    scrape,
    unique,
    worker_process,
)
from tests.resilience.engines import SwitchableEngine
from tests.runner import run_chatgate

MOBILE = "13812345678"  # a CN mobile number: the "private" assistant's guard routes it


@dataclass
class Chain:
    url: str
    database_url: str
    engines: dict[str, Engine]  # primary, backup, vault
    ids: dict[str, str]  # role -> provider id


def chain_assistants(ids: dict[str, str]) -> list[AssistantConfig]:
    primary, backup = ids["primary"], ids["backup"]
    private = GuardPolicy(pii="route", private_provider=ids["vault"])
    return [
        assistant_on("chained", primary, fallbacks=(backup,), answer=BUSY),
        assistant_on("canned", primary, answer=BUSY),
        assistant_on("bare", primary, fallbacks=(backup,)),
        assistant_on("private", primary, fallbacks=(backup,), answer=BUSY, guards=private),
        assistant_on("private-bare", primary, fallbacks=(backup,), guards=private),
    ]


def own_database(database_url: str, folder: Path) -> str:
    # A SQLite file of its own: a chatgate starting on SQLite recovers every unfinished answer.
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{folder / 'chatgate.db'}"
    return database_url


@pytest.fixture(scope="module")
def chain(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with ExitStack() as stack:
        engines = {}
        for role in ("primary", "backup", "vault"):
            api = SwitchableEngine()
            engines[role] = Engine(url=stack.enter_context(serve_app(api.app())), api=api)
        ids = {role: unique(role) for role in engines}
        # The assistants' model is the primary's; the others name their own.
        models = {"primary": None, "backup": "backup-model", "vault": "vault-model"}
        providers = [
            engine_config(ids[role], engines[role].url, model=models[role]) for role in engines
        ]
        database = own_database(database_url, tmp_path_factory.mktemp("fallback"))
        settings = gateway_settings(database, providers, chain_assistants(ids))
        url = stack.enter_context(run_chatgate(settings))
        yield Chain(url=url, database_url=database, engines=engines, ids=ids)


@pytest.fixture
async def carol(chain: Chain) -> AsyncIterator[Caller]:
    for engine in chain.engines.values():
        engine.api.healthy()
    async with open_caller(chain.url) as caller:
        yield caller


def calls(chain: Chain) -> dict[str, int]:
    return {role: engine.api.calls for role, engine in chain.engines.items()}


def answer_of(response: httpx.Response, mode: str) -> dict[str, Any]:
    """The assistant's message as the response gives it, blocking or streaming."""
    if mode == "streaming":
        events = parse_sse(response.text)
        assert events[-1]["event"] == "message_end", response.text
        message: dict[str, Any] = events[-1]["data"]["message"]
        assert message["content"] == "".join(e["data"]["text"] for e in events[1:-1])
        return message
    assert response.status_code == 200, response.text
    return response.json()["message"]  # type: ignore[no-any-return]


async def stored(chain: Chain, message_id: str) -> Message:
    async with read_database(chain.database_url) as db:
        row = await db.scalar(select(Message).where(Message.id == uuid.UUID(message_id)))
    assert row is not None
    return row


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_the_usual_engine_answers_unmarked(carol: Caller, chain: Chain, mode: str) -> None:
    _, response = await ask(carol.http, "chained", "hello", mode)
    message = answer_of(response, mode)
    assert message["content"] == "echo: hello"
    assert message["fallback"] is False and message["provider"] == chain.ids["primary"]
    row = await stored(chain, message["id"])
    assert (row.fallback, row.provider) == (False, chain.ids["primary"])
    assert chain.engines["primary"].api.api.requests[-1]["model"] == "double-model"


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_a_failing_engine_falls_back_to_the_next_one(
    carol: Caller, chain: Chain, mode: str
) -> None:
    chain.engines["primary"].api.failing(500)
    before, metrics_before = calls(chain), await scrape(carol.http)
    session, response = await ask(carol.http, "chained", "where is my parcel", mode)
    message = answer_of(response, mode)
    assert message["content"] == "echo: where is my parcel"
    assert message["status"] == "complete" and message["error"] is None
    assert message["fallback"] is True and message["provider"] == chain.ids["backup"]
    after = calls(chain)
    assert after["primary"] - before["primary"] == 1
    assert after["backup"] - before["backup"] == 1
    # The fallback engine is asked for its own model, not the assistant's.
    assert chain.engines["backup"].api.api.requests[-1]["model"] == "backup-model"
    history = (await carol.history(session["id"]))["data"]
    assert history[1]["fallback"] is True and history[1]["provider"] == chain.ids["backup"]
    assert history[0]["fallback"] is False  # the user's own message
    row = await stored(chain, message["id"])
    assert (row.fallback, row.provider, row.status) == (True, chain.ids["backup"], "complete")
    labels = {"provider": chain.ids["primary"], "to": chain.ids["backup"]}
    metrics_after = await scrape(carol.http)
    assert (
        metric(metrics_after, "chatgate_fallbacks_total", **labels)
        - metric(metrics_before, "chatgate_fallbacks_total", **labels)
        == 1
    )


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
@pytest.mark.parametrize("assistant", ["chained", "canned"])
async def test_when_every_engine_fails_the_canned_answer_is_given(
    carol: Caller, chain: Chain, mode: str, assistant: str
) -> None:
    chain.engines["primary"].api.failing(500)
    chain.engines["backup"].api.failing(503)
    session, response = await ask(carol.http, assistant, "is the shop open?", mode)
    message = answer_of(response, mode)
    assert message["content"] == BUSY
    assert message["status"] == "complete" and message["error"] is None
    assert message["fallback"] is True and message["provider"] is None
    row = await stored(chain, message["id"])
    assert (row.content, row.fallback, row.provider) == (BUSY, True, None)
    # The conversation goes on once the engine is back; the canned answer stays marked.
    chain.engines["primary"].api.healthy()
    again = await carol.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "and now?"}
    )
    assert again.json()["message"]["fallback"] is False
    history = (await carol.history(session["id"]))["data"]
    assert [m["fallback"] for m in history] == [False, True, False, False]


async def test_without_a_canned_answer_the_last_error_stands_naming_every_engine(
    carol: Caller, chain: Chain
) -> None:
    chain.engines["primary"].api.failing(500)
    chain.engines["backup"].api.failing(400)
    _, response = await ask(carol.http, "bare", "anyone?")
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"]["code"] == "upstream_rejected"  # the last engine's
    assert chain.ids["backup"] in body["error"]["message"]
    assert chain.ids["primary"] in body["error"]["message"]  # and what came before it
    assert body["message"]["status"] == "failed" and body["message"]["fallback"] is False


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_an_engine_dying_mid_answer_is_not_replaced(
    carol: Caller, chain: Chain, mode: str
) -> None:
    before = calls(chain)
    _, response = await ask(carol.http, "chained", "[[die-after 3]] go", mode)
    if mode == "streaming":
        body = parse_sse(response.text)[-1]["data"]
    else:
        assert response.status_code == 502
        body = response.json()
    # The text so far is kept as it is: never finished by another engine, nor by the canned text.
    assert body["message"]["status"] == "failed"
    assert body["message"]["content"] == "w0 w1 w2 "
    assert body["message"]["fallback"] is False
    assert calls(chain)["backup"] == before["backup"]
    row = await stored(chain, body["message"]["id"])
    assert (row.status, row.content, row.fallback) == ("failed", "w0 w1 w2 ", False)


async def test_the_openai_front_marks_fallbacks(carol: Caller, chain: Chain) -> None:
    async def complete(stream: bool = False) -> httpx.Response:
        body = {"model": "chained", "messages": [{"role": "user", "content": "hi"}]}
        return await carol.http.post("/v1/chat/completions", json={**body, "stream": stream})

    usual = await complete()
    assert usual.headers["x-chatgate-fallback"] == "false"
    assert usual.json()["chatgate_fallback"] is False

    chain.engines["primary"].api.failing(500)
    backed = await complete()
    assert backed.status_code == 200
    assert backed.headers["x-chatgate-fallback"] == "true"
    assert backed.headers["x-chatgate-provider"] == chain.ids["backup"]
    reply = backed.json()
    assert reply["choices"][0]["message"]["content"] == "echo: hi"
    assert (reply["chatgate_fallback"], reply["chatgate_provider"]) == (True, chain.ids["backup"])

    streamed = await complete(stream=True)
    assert streamed.headers["x-chatgate-fallback"] == "true"
    lines = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: {")]
    pieces = [httpx.Response(200, content=line).json() for line in lines]
    assert all(p["chatgate_fallback"] is True for p in pieces)
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in pieces if p["choices"]) == (
        "echo: hi"
    )

    chain.engines["backup"].api.failing(500)
    canned = await complete()
    assert canned.headers["x-chatgate-fallback"] == "true"
    assert "x-chatgate-provider" not in canned.headers
    assert canned.json()["choices"][0]["message"]["content"] == BUSY
    assert canned.json()["chatgate_provider"] is None


async def test_the_private_engine_is_asked_for_its_own_model(carol: Caller, chain: Chain) -> None:
    _, response = await ask(carol.http, "private", f"call me on {MOBILE}")
    message = answer_of(response, "blocking")
    assert message["provider"] == chain.ids["vault"]
    assert chain.engines["vault"].api.api.requests[-1]["model"] == "vault-model"


async def test_private_answers_never_fall_back_to_another_engine(
    carol: Caller, chain: Chain
) -> None:
    chain.engines["vault"].api.failing(500)
    before = calls(chain)
    _, response = await ask(carol.http, "private", f"call me on {MOBILE}")
    message = answer_of(response, "blocking")
    # The private engine failed: the canned answer, and no other engine saw the number.
    assert message["content"] == BUSY and message["fallback"] is True
    after = calls(chain)
    assert after["vault"] - before["vault"] == 1
    assert (after["primary"], after["backup"]) == (before["primary"], before["backup"])
    _, failed = await ask(carol.http, "private-bare", f"call me on {MOBILE}")
    assert failed.status_code == 502
    assert chain.ids["vault"] in failed.json()["error"]["message"]
    assert calls(chain)["backup"] == before["backup"]


async def test_an_open_breaker_sends_answers_straight_to_the_fallback(
    database_url: str, tmp_path: Path, engine: Engine, backup: Engine
) -> None:
    primary_id, backup_id = unique("primary"), unique("backup")
    providers = [
        engine_config(primary_id, engine.url, breaker=BreakerPolicy(failures=2, open_seconds=30)),
        engine_config(backup_id, backup.url),
    ]
    # Its own assistant id: on PostgreSQL the assistants of earlier gateways are there already.
    assistant = unique("chained")
    assistants = [assistant_on(assistant, primary_id, fallbacks=(backup_id,), answer=BUSY)]
    settings = gateway_settings(own_database(database_url, tmp_path), providers, assistants)
    with run_chatgate(settings) as url:
        async with open_caller(url) as carol:
            engine.api.failing(500)
            for _ in range(2):
                _, response = await ask(carol.http, assistant, "hello")
                assert response.json()["message"]["provider"] == backup_id
            assert engine.api.calls == 2
            start = time.perf_counter()
            _, response = await ask(carol.http, assistant, "hello again")
            message = answer_of(response, "blocking")
            assert (message["provider"], message["fallback"]) == (backup_id, True)
            assert engine.api.calls == 2  # refused by its breaker: never asked
            assert time.perf_counter() - start < 1.0


async def test_queued_answers_fall_back_too(
    database_url: str, tmp_path: Path, engine: Engine, backup: Engine
) -> None:
    primary_id, backup_id = unique("primary"), unique("backup")
    providers = [engine_config(primary_id, engine.url), engine_config(backup_id, backup.url)]
    assistant = unique("chained")
    assistants = [assistant_on(assistant, primary_id, fallbacks=(backup_id,), answer=BUSY)]
    settings = gateway_settings(
        own_database(database_url, tmp_path), providers, assistants,
        redis_url=REDIS_URL, task_queue=f"chatgate-test:{secrets.token_hex(4)}",
    )  # fmt: skip
    with run_chatgate(settings) as url, worker_process(settings, tmp_path):
        async with open_caller(url) as carol:
            engine.api.failing(500)
            message = await answer_later(carol, assistant, "queued, please")
            assert message["content"] == "echo: queued, please"
            assert (message["fallback"], message["provider"]) == (True, backup_id)
            backup.api.failing(500)
            message = await answer_later(carol, assistant, "and this one?")
            assert (message["content"], message["fallback"], message["provider"]) == (
                BUSY, True, None,
            )  # fmt: skip
            assert engine.api.calls == 2 and backup.api.calls == 2


async def answer_later(carol: Caller, assistant: str, content: str) -> dict[str, Any]:
    _, response = await ask(carol.http, assistant, content, "async")
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    for _ in range(200):
        task = (await carol.http.get(f"/v1/tasks/{task_id}")).json()
        if task["status"] in ("succeeded", "failed"):
            assert task["status"] == "succeeded", task
            return task["message"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")
