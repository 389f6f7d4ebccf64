"""Timeouts per engine, against engines that really stall: no connection accepted, no first
token, silence mid-answer, an answer longer than the total time. OpenAI, Anthropic and Dify."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chatgate.core.engine_config import Timeouts
from chatgate.core.policies import RetryPolicy
from tests.conftest import Caller, open_caller, parse_sse
from tests.doubles.anthropic_api import AnthropicDouble
from tests.doubles.dify_api import DifyDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app
from tests.resilience.conftest import ask, assistant_on, engine_config, gateway_settings
from tests.resilience.engines import unaccepting_port
from tests.runner import run_chatgate

# First text within 1.5 s, then never more than 0.5 s of silence, 3 s in all.
TIMEOUTS = Timeouts(connect=0.3, first_token=1.5, between_tokens=0.5, total=3)
ONE_RETRY = RetryPolicy(attempts=1, backoff=0.05, max_backoff=0.1)


@dataclass
class Engines:
    url: str
    openai: OpenAIDouble


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    os.environ["ANTHROPIC_DOUBLE_KEY"] = "sk-ant-double"
    os.environ["DIFY_APP_KEY"] = "app-dify-double"
    openai = OpenAIDouble(api_key="sk-double")
    database = Path(tmp_path_factory.mktemp("timeouts")) / "chatgate.db"
    with (
        serve_app(openai.app()) as openai_url,
        serve_app(AnthropicDouble(api_key="sk-ant-double").app()) as anthropic_url,
        serve_app(DifyDouble(api_key="app-dify-double").app()) as dify_url,
        unaccepting_port() as port,
    ):
        common: dict[str, Any] = {"timeouts": TIMEOUTS, "retries": ONE_RETRY}
        providers = [
            engine_config("openai", openai_url, **common),
            engine_config(
                "anthropic", "", type="anthropic", base_url=anthropic_url,
                api_key_env="ANTHROPIC_DOUBLE_KEY", **common,
            ),
            engine_config(
                "dify", "", type="dify", base_url=f"{dify_url}/v1", api_key_env="DIFY_APP_KEY",
                **common,
            ),
            engine_config("unaccepting", f"http://127.0.0.1:{port}", **common),
        ]  # fmt: skip
        assistants = [assistant_on(f"on-{p.id}", p.id) for p in providers]
        settings = gateway_settings(f"sqlite+aiosqlite:///{database}", providers, assistants)
        with run_chatgate(settings) as url:
            yield Engines(url=url, openai=openai)


@pytest.fixture
async def carol(engines: Engines) -> AsyncIterator[Caller]:
    async with open_caller(engines.url) as caller:
        yield caller


def calls_with(double: OpenAIDouble, marker: str) -> int:
    return sum(
        1 for body in double.requests if any(marker in m["content"] for m in body["messages"])
    )


async def test_an_engine_that_never_answers_times_out_and_is_tried_again(
    carol: Caller, engines: Engines
) -> None:
    marker = uuid.uuid4().hex
    session, response = await ask(carol.http, "on-openai", f"[[hang]] {marker}")
    elapsed = response.elapsed.total_seconds()
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_timeout"
    assert "did not answer in time" in error["message"]
    # Two tries of first_token each (nothing was sent, so it was tried again), then given up.
    assert calls_with(engines.openai, marker) == 2
    assert 2 * TIMEOUTS.first_token <= elapsed < 2 * TIMEOUTS.first_token + 1.5
    stored = (await carol.history(session["id"]))["data"][1]
    assert stored["status"] == "failed" and stored["error"]["code"] == "upstream_timeout"


async def test_an_engine_that_accepts_no_connection_is_a_connect_timeout(carol: Caller) -> None:
    _, response = await ask(carol.http, "on-unaccepting", "anyone?")
    elapsed = response.elapsed.total_seconds()
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "upstream_timeout"
    # Two tries of the 0.3 s connect timeout, not of the 1.5 s first-token one.
    assert 2 * TIMEOUTS.connect <= elapsed < TIMEOUTS.first_token


@pytest.mark.parametrize("engine", ["openai", "anthropic", "dify"])
@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_silence_mid_answer_is_a_between_tokens_timeout_keeping_the_text(
    carol: Caller, engines: Engines, engine: str, mode: str
) -> None:
    marker = uuid.uuid4().hex
    # The first word after 0.9 s (inside first_token), the next 0.9 s later: too long a silence.
    session, response = await ask(carol.http, f"on-{engine}", f"[[slow 4 0.9]] {marker}", mode)
    elapsed = response.elapsed.total_seconds()
    if mode == "streaming":
        events = parse_sse(response.text)
        assert [e["event"] for e in events] == ["message_start", "delta", "error"]
        body = events[-1]["data"]
    else:
        assert response.status_code == 504, response.text
        body = response.json()
    assert body["error"]["code"] == "upstream_timeout"
    assert "went silent mid-answer" in body["error"]["message"]
    assert body["message"]["status"] == "failed"
    assert body["message"]["content"] == "w0 "
    assert elapsed < TIMEOUTS.total - 0.5  # cut by the silence, well before the total time
    stored = (await carol.history(session["id"]))["data"][1]
    assert stored["status"] == "failed" and stored["content"] == "w0 "
    if engine == "openai":  # text had reached the client: never asked again
        assert calls_with(engines.openai, marker) == 1


async def test_a_steady_answer_is_cut_at_the_total_time_keeping_the_text(
    carol: Caller, engines: Engines
) -> None:
    marker = uuid.uuid4().hex
    session, response = await ask(carol.http, "on-openai", f"[[slow 60 0.1]] {marker}")
    elapsed = response.elapsed.total_seconds()
    assert response.status_code == 504, response.text
    body = response.json()
    assert "did not finish its answer in the total time" in body["error"]["message"]
    words = body["message"]["content"].split()
    assert 10 <= len(words) < 60 and words[:3] == ["w0", "w1", "w2"]
    assert TIMEOUTS.total <= elapsed < TIMEOUTS.total + 1.5
    assert calls_with(engines.openai, marker) == 1
    stored = (await carol.history(session["id"]))["data"][1]
    assert stored["content"] == body["message"]["content"]
