"""OpenAI-compatible engines, through chatgate's own API: unreachable, non-streaming and refusing
engines, against the double of the chat-completions API."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chatgate.core.config import AssistantConfig, ProviderConfig
from chatgate.core.engine_config import Timeouts
from tests.conftest import (
    GUARDS_OFF,
    Caller,
    Double,
    assert_error,
    double_provider,
    open_caller,
    parse_sse,
    remote_only_settings,
)
from tests.doubles.server import free_port
from tests.runner import run_chatgate


def engine(provider_id: str, base_url: str, **fields: Any) -> ProviderConfig:
    values: dict[str, Any] = {
        "api_key_env": "DOUBLE_API_KEY",
        "timeouts": Timeouts(connect=2, first_token=3, total=20),
        **fields,
    }
    return ProviderConfig(id=provider_id, type="openai", base_url=base_url, **values)


def assistant_on(provider_id: str) -> AssistantConfig:
    return AssistantConfig(
        id=f"on-{provider_id}",
        name=f"On {provider_id}",
        provider=provider_id,
        model=f"model-of-{provider_id}",
        system_prompt="Echo the user.",
        max_context_tokens=4000,
        max_answer_tokens=100,
        guards=GUARDS_OFF,
    )


@dataclass
class Engines:
    url: str
    double: Double
    closed_port: int


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, openai_double: Double) -> Iterator[Engines]:
    os.environ["WRONG_DOUBLE_KEY"] = "sk-not-the-right-one"
    closed_port = free_port()  # nothing listens there
    path = tmp_path_factory.mktemp("openai") / "chatgate.db"
    settings = remote_only_settings(
        f"sqlite+aiosqlite:///{path}",
        openai_double.url,
        providers=[
            double_provider(openai_double.url),
            engine("closed", f"http://127.0.0.1:{closed_port}/v1"),
            engine("plain", f"{openai_double.url}/v1", stream=False),
            engine("wrongkey", f"{openai_double.url}/v1", api_key_env="WRONG_DOUBLE_KEY"),
        ],
        assistants=[assistant_on(p) for p in ("double", "closed", "plain", "wrongkey")],
    )
    with run_chatgate(settings) as url:
        yield Engines(url=url, double=openai_double, closed_port=closed_port)


@pytest.fixture
async def carol(engines: Engines) -> AsyncIterator[Caller]:
    async with open_caller(engines.url) as caller:
        yield caller


async def send(caller: Caller, assistant_id: str, content: str, mode: str = "blocking") -> Any:
    session = await caller.new_session(assistant_id)
    response = await caller.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": content, "response_mode": mode},
    )
    return session, response


async def test_an_unreachable_engine_is_503_and_the_question_is_kept(carol: Caller) -> None:
    for mode in ("blocking", "streaming"):
        session, response = await send(carol, "on-closed", "anyone there?", mode)
        body = assert_error(response, 503, "upstream_unavailable")
        assert body["message"]["status"] == "failed"
        page = await carol.history(session["id"])
        assert [(m["role"], m["status"]) for m in page["data"]] == [
            ("user", "complete"),
            ("assistant", "failed"),
        ]
        assert page["data"][0]["content"] == "anyone there?"
        assert page["data"][1]["error"]["code"] == "upstream_unavailable"
    session, response = await send(carol, "on-closed", "and later?", "async")
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    for _ in range(100):
        task = (await carol.http.get(f"/v1/tasks/{task_id}")).json()
        if task["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert task["status"] == "failed"
    assert task["message"]["error"]["code"] == "upstream_unavailable"


async def test_an_unreachable_engine_s_address_reaches_the_log_never_the_client(
    carol: Caller, engines: Engines
) -> None:
    address = ("127.0.0.1", str(engines.closed_port))
    logged = _Records()
    logging.getLogger("chatgate.providers").addHandler(logged)
    try:
        texts = []
        for mode in ("blocking", "streaming"):
            session, response = await send(carol, "on-closed", "where are you?", mode)
            body = assert_error(response, 503, "upstream_unavailable")
            assert body["error"]["message"] == "engine 'closed' could not be reached"
            texts += [response.text, json.dumps(await carol.history(session["id"]))]
        dialect = await carol.http.post(
            "/v1/chat/completions",
            json={"model": "on-closed", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert dialect.status_code == 503, dialect.text
        texts.append(dialect.text)
    finally:
        logging.getLogger("chatgate.providers").removeHandler(logged)
    for text in texts:
        assert not any(part in text for part in address), text
    assert any(all(part in line for part in address) for line in logged.lines), logged.lines


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_a_non_streaming_engine_answers_whole_and_reports_usage(
    carol: Caller, engines: Engines
) -> None:
    session, response = await send(carol, "on-plain", "hello plain world")
    assert response.status_code == 200, response.text
    sent = engines.double.api.requests[-1]
    assert sent["model"] == "model-of-plain"
    assert sent["stream"] is False and "stream_options" not in sent
    message = response.json()["message"]
    assert message["content"] == "echo: hello plain world"
    assert message["status"] == "complete"
    prompt_words = 3 + 3  # the double counts words: the system prompt and the question
    assert message["usage"] == {
        "prompt_tokens": prompt_words,
        "completion_tokens": 4,
        "total_tokens": prompt_words + 4,
    }
    stored = (await carol.history(session["id"]))["data"][1]
    assert stored["usage"] == message["usage"] and stored["content"] == message["content"]

    # Streaming to the client still works: the whole answer comes as one delta.
    _, streamed = await send(carol, "on-plain", "one piece", "streaming")
    events = parse_sse(streamed.text)
    assert [e["event"] for e in events] == ["message_start", "delta", "message_end"]
    assert events[1]["data"]["text"] == "echo: one piece"
    assert events[2]["data"]["usage"]["completion_tokens"] == 3
    assert engines.double.api.requests[-1]["stream"] is False


async def test_a_streaming_engine_gets_the_key_and_asks_for_usage(
    carol: Caller, engines: Engines
) -> None:
    _, response = await send(carol, "on-double", "with usage please")
    assert response.status_code == 200, response.text
    sent = engines.double.api.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert engines.double.api.headers[-1]["Authorization"] == "Bearer sk-double"
    assert response.json()["message"]["usage"]["completion_tokens"] == 4


async def test_the_engine_learns_an_opaque_stable_user_never_the_id(
    carol: Caller, engines: Engines
) -> None:
    sent = []
    for content in ("who am I?", "and now?"):
        _, response = await send(carol, "on-double", content)
        assert response.status_code == 200, response.text
        sent.append(engines.double.api.requests[-1])
    opaque = hashlib.sha256(b"chatgate-user:" + carol.user_id.encode()).hexdigest()[:32]
    assert [body["user"] for body in sent] == [opaque, opaque]
    assert all(carol.user_id not in json.dumps(body) for body in sent)


async def test_an_engine_refusing_the_key_is_502_upstream_auth_failed(carol: Caller) -> None:
    for mode in ("blocking", "streaming"):
        session, response = await send(carol, "on-wrongkey", "let me in", mode)
        body = assert_error(response, 502, "upstream_auth_failed")
        assert "sk-not-the-right-one" not in response.text
        assert body["message"]["status"] == "failed"
        stored = (await carol.history(session["id"]))["data"]
        assert stored[0]["content"] == "let me in"
        assert stored[1]["error"]["code"] == "upstream_auth_failed"


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "upstream_rejected"), (404, "upstream_rejected"), (500, "upstream_error")],
)
async def test_engine_errors_map_to_gateway_errors(carol: Caller, status: int, code: str) -> None:
    _, response = await send(carol, "on-double", f"[[status {status}]]")
    assert_error(response, 502, code)
    assert f"answered {status}" in response.json()["error"]["message"]
