"""The bundled engine: SmolLM2-135M-Instruct on llama.cpp, for real, through chatgate's API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatgate.core.config import AssistantConfig, ProviderConfig
from tests.conftest import (
    Caller,
    Double,
    Gateway,
    assert_error,
    open_caller,
    parse_sse,
    settings_for,
)
from tests.runner import run_chatgate

# Deterministic at temperature 0, and long: the model keeps counting until max_answer_tokens.
LONG_PROMPT = "List the numbers from 1 to 500, separated by commas."


async def test_a_streamed_answer_comes_in_deltas_that_add_up_to_what_is_stored(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("helper")
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "Write one sentence about the sea.", "response_mode": "streaming"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert events[0]["event"] == "message_start" and events[-1]["event"] == "message_end"
    deltas = [e["data"]["text"] for e in events if e["event"] == "delta"]
    assert len(deltas) >= 3
    final = events[-1]["data"]["message"]
    assert final["status"] == "complete"
    assert final["model"] == "smollm2-135m-instruct"
    assert "".join(deltas) == final["content"]
    assert final["content"].strip()
    usage = events[-1]["data"]["usage"]
    assert 0 < usage["completion_tokens"] <= 48 and usage["prompt_tokens"] > 0
    stored = (await alice.history(session["id"]))["data"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == final["content"] and stored[1]["status"] == "complete"


async def test_a_blocking_answer_from_the_local_engine(alice: Caller) -> None:
    session = await alice.new_session("helper")
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "What is the capital of Italy?"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    message = response.json()["message"]
    assert message["status"] == "complete" and message["content"].strip()
    assert message["usage"]["completion_tokens"] > 0


@pytest.fixture(scope="module")
def busy_gateway(tmp_path_factory: pytest.TempPathFactory, openai_double: Double) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("local") / "chatgate.db"
    settings = settings_for(
        f"sqlite+aiosqlite:///{path}",
        openai_double.url,
        providers=[ProviderConfig(id="local", type="local", max_concurrency=1, queue_timeout=1.0)],
        assistants=[
            AssistantConfig(
                id="storyteller",
                name="Storyteller",
                provider="local",
                model="smollm2-135m-instruct",
                system_prompt="You are helpful.",
                max_context_tokens=2048,
                max_answer_tokens=1000,
                temperature=0.0,
            ),
            AssistantConfig(
                id="quick",
                name="Quick",
                provider="local",
                model="smollm2-135m-instruct",
                max_context_tokens=512,
                max_answer_tokens=8,
                temperature=0.0,
            ),
        ],
    )
    with run_chatgate(settings) as url:
        yield url


async def test_a_second_answer_waits_then_gets_503_engine_busy(busy_gateway: str) -> None:
    async with open_caller(busy_gateway) as caller:
        long_session = await caller.new_session("storyteller")
        other = await caller.new_session("quick")
        loop = asyncio.get_running_loop()
        raw = ""
        busy: Any = None
        stopped: Any = None
        async with caller.http.stream(
            "POST",
            f"/v1/sessions/{long_session['id']}/messages",
            json={"content": LONG_PROMPT, "response_mode": "streaming"},
            timeout=120,
        ) as stream:
            # Read on to the end: leaving the stream early would be a client disconnect.
            async for chunk in stream.aiter_text():
                raw += chunk
                if busy is None and "event: delta" in raw:
                    started = loop.time()
                    busy = await caller.http.post(
                        f"/v1/sessions/{other['id']}/messages", json={"content": "Hi"}, timeout=60
                    )
                    waited = loop.time() - started
                    stopped = await caller.http.post(f"/v1/sessions/{long_session['id']}/stop")
        assert busy is not None, raw
        body = assert_error(busy, 503, "engine_busy")
        assert int(busy.headers["retry-after"]) > 0
        assert body["message"]["status"] == "failed"
        assert 1.0 <= waited < 10
        # The long answer was still being written when the second one gave up.
        assert stopped.json()["stopped"] is True, stopped.text
        kept = stopped.json()["message"]
        assert kept["status"] == "interrupted" and kept["content"]
        assert (await caller.history(long_session["id"]))["data"][1] == kept
        end = parse_sse(raw)[-1]
        assert end["event"] == "message_end" and end["data"]["message"] == kept
        stored = await caller.history(other["id"])
        assert [(m["role"], m["status"]) for m in stored["data"]] == [
            ("user", "complete"),
            ("assistant", "failed"),
        ]
        assert stored["data"][1]["error"]["code"] == "engine_busy"
        # Stopping freed the engine: the next answer gets it.
        after = await caller.http.post(
            f"/v1/sessions/{other['id']}/messages", json={"content": "Hi again"}, timeout=60
        )
        assert after.status_code == 200, after.text
        assert after.json()["message"]["status"] == "complete"
