"""The Anthropic engine, through chatgate's own HTTP API, against a double of the Messages API."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatgate.core.config import AssistantConfig, ProviderConfig, Settings
from chatgate.core.engine_config import Timeouts
from tests.conftest import GUARDS_OFF, JWT_AUDIENCE, JWT_SECRET, Caller, make_token, parse_sse
from tests.doubles.anthropic_api import AnthropicDouble
from tests.doubles.server import serve_app
from tests.runner import run_chatgate

API_KEY = "sk-ant-double"
SYSTEM_PROMPT = "You are a careful tester."


def anthropic_provider(provider_id: str, url: str, **fields: Any) -> ProviderConfig:
    values = {"timeouts": Timeouts(connect=2, first_token=3, total=20), **fields}
    return ProviderConfig(
        id=provider_id, type="anthropic", base_url=url, api_key_env="ANTHROPIC_DOUBLE_KEY", **values
    )


def assistant(assistant_id: str, provider: str, **fields: Any) -> AssistantConfig:
    return AssistantConfig(
        id=assistant_id,
        name=assistant_id,
        provider=provider,
        model="claude-double",
        system_prompt=SYSTEM_PROMPT,
        max_context_tokens=4000,
        max_answer_tokens=200,
        **{"guards": GUARDS_OFF, **fields},
    )


@dataclass
class AnthropicGateway:
    url: str
    settings: Settings
    anthropic: AnthropicDouble


@pytest.fixture(scope="module")
def anthropic_gateway(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnthropicGateway]:
    if database_url.startswith("sqlite"):
        # A file of its own: starting a chatgate on SQLite recovers every unfinished answer.
        path = tmp_path_factory.mktemp("anthropic") / "chatgate.db"
        database_url = f"sqlite+aiosqlite:///{path}"
    os.environ["ANTHROPIC_DOUBLE_KEY"] = API_KEY
    anthropic = AnthropicDouble(api_key=API_KEY)
    with serve_app(anthropic.app()) as url:
        settings = Settings(
            database_url=database_url,
            auth_mode="jwt",
            jwt_secret=JWT_SECRET,
            jwt_audience=JWT_AUDIENCE,
            stream_flush_seconds=0.2,
            providers=[
                anthropic_provider("anthropic", url),
                anthropic_provider("anthropic-whole", url, stream=False),
                anthropic_provider(
                    "anthropic-impatient",
                    url,
                    timeouts=Timeouts(connect=2, first_token=0.5, total=5),
                ),
            ],
            assistants=[
                assistant("claude", "anthropic", temperature=1.5),
                assistant("claude-whole", "anthropic-whole"),
                assistant("claude-impatient", "anthropic-impatient"),
            ],
        )
        with run_chatgate(settings) as gateway_url:
            yield AnthropicGateway(url=gateway_url, settings=settings, anthropic=anthropic)


@pytest.fixture
async def dave(anthropic_gateway: AnthropicGateway) -> AsyncIterator[Caller]:
    user_id = f"dave-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {make_token(user_id)}"}
    async with httpx.AsyncClient(
        base_url=anthropic_gateway.url, headers=headers, timeout=30
    ) as http:
        yield Caller(user_id=user_id, http=http)


async def send(
    caller: Caller, session_id: str, content: str, mode: str = "blocking"
) -> httpx.Response:
    return await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, "response_mode": mode}
    )


def sent_with(anthropic: AnthropicDouble, text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The request (and its headers) whose last message ends with `text`."""
    for body, headers in zip(
        reversed(anthropic.requests), reversed(anthropic.headers), strict=True
    ):
        if body["messages"][-1]["content"].endswith(text):
            return body, headers
    raise AssertionError(f"Anthropic never received {text!r}")


@pytest.mark.parametrize("assistant_id", ["claude", "claude-whole"])
@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_answer_is_stored_with_anthropic_usage(
    dave: Caller, anthropic_gateway: AnthropicGateway, assistant_id: str, mode: str
) -> None:
    session = await dave.new_session(assistant_id)
    content = f"hello claude {mode}"
    response = await send(dave, session["id"], content, mode)
    assert response.status_code == 200, response.text
    if mode == "streaming":
        events = parse_sse(response.text)
        assert events[-1]["event"] == "message_end"
        deltas = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
        message = events[-1]["data"]["message"]
        assert deltas == message["content"]
    else:
        message = response.json()["message"]
    assert message["content"] == f"echo: {content}" and message["status"] == "complete"
    # Input tokens from message_start (the double counts the system prompt's 5 words and the
    # message's 3), output tokens from message_delta (or the whole message's usage).
    assert message["usage"] == {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}
    body, _ = sent_with(anthropic_gateway.anthropic, content)
    assert body["stream"] is (assistant_id == "claude")
    stored = (await dave.history(session["id"]))["data"][1]
    assert stored["content"] == f"echo: {content}" and stored["usage"] == message["usage"]


async def test_request_follows_the_messages_api(
    dave: Caller, anthropic_gateway: AnthropicGateway
) -> None:
    session = await dave.new_session("claude")
    await send(dave, session["id"], "what shape?")
    body, headers = sent_with(anthropic_gateway.anthropic, "what shape?")
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in headers
    assert body["system"] == SYSTEM_PROMPT
    assert body["messages"] == [{"role": "user", "content": "what shape?"}]
    assert body["model"] == "claude-double" and body["max_tokens"] == 200
    # The assistant's 1.5 is beyond Anthropic's range of 0..1.
    assert body["temperature"] == 1.0
    # An opaque id, the same for every call of this user, never the id itself.
    opaque = hashlib.sha256(b"chatgate-user:" + dave.user_id.encode()).hexdigest()[:32]
    assert body["metadata"] == {"user_id": opaque}
    assert dave.user_id not in json.dumps(body)


async def test_history_is_reshaped_to_alternate_from_a_user_turn(
    dave: Caller, anthropic_gateway: AnthropicGateway
) -> None:
    session = await dave.new_session("claude")
    for role, content in [
        ("assistant", "Welcome! (an opening line before any question)"),
        ("user", "first question"),
        ("user", "and a second one"),
        ("assistant", "first answer"),
        ("system", "The user prefers short answers."),
        ("assistant", "second answer"),
    ]:
        # Only admins and service keys may record system or assistant messages.
        admin = {"Authorization": f"Bearer {make_token(dave.user_id, admin=True)}"}
        response = await dave.http.post(
            "/v1/history", json={"session_id": session["id"], "role": role, "content": content},
            headers=admin if role != "user" else None,
        )  # fmt: skip
        assert response.status_code == 201, response.text
    # The double refuses what Anthropic refuses (system roles, two turns of one role in a row,
    # an assistant turn first), so a 200 here is the API's own verdict.
    response = await send(dave, session["id"], "third question", "streaming")
    assert response.status_code == 200, response.text
    assert parse_sse(response.text)[-1]["event"] == "message_end"
    body, _ = sent_with(anthropic_gateway.anthropic, "third question")
    assert body["system"] == f"{SYSTEM_PROMPT}\n\nThe user prefers short answers."
    assert body["messages"] == [
        {"role": "user", "content": "first question\n\nand a second one"},
        {"role": "assistant", "content": "first answer\n\nsecond answer"},
        {"role": "user", "content": "third question"},
    ]


async def test_history_ending_with_a_user_turn_is_merged_with_the_new_one(
    dave: Caller, anthropic_gateway: AnthropicGateway
) -> None:
    session = await dave.new_session("claude")
    unanswered = {"session_id": session["id"], "role": "user", "content": "are you there?"}
    assert (await dave.http.post("/v1/history", json=unanswered)).status_code == 201
    response = await send(dave, session["id"], "try again")
    assert response.status_code == 200, response.text
    body, _ = sent_with(anthropic_gateway.anthropic, "try again")
    assert body["messages"] == [{"role": "user", "content": "are you there?\n\ntry again"}]


async def test_error_event_mid_stream_keeps_the_text_as_failed(dave: Caller) -> None:
    session = await dave.new_session("claude")
    response = await send(dave, session["id"], "[[error-after 5 overloaded_error]]", "streaming")
    events = parse_sse(response.text)
    error = events[-1]
    assert error["event"] == "error"
    assert error["data"]["error"]["code"] == "upstream_overloaded"
    assert error["data"]["error"]["trace_id"] == response.headers["x-trace-id"]
    assert error["data"]["message"]["status"] == "failed"
    assert error["data"]["message"]["content"] == "w0 w1 w2 w3 w4 "
    stored = (await dave.history(session["id"]))["data"][1]
    assert stored["status"] == "failed" and stored["content"] == "w0 w1 w2 w3 w4 "
    assert stored["error"]["code"] == "upstream_overloaded"


async def test_connection_lost_mid_stream_keeps_the_text_as_failed(dave: Caller) -> None:
    session = await dave.new_session("claude")
    response = await send(dave, session["id"], "[[die-after 4]]", "streaming")
    error = parse_sse(response.text)[-1]
    assert error["event"] == "error" and error["data"]["error"]["code"] == "upstream_error"
    assert error["data"]["message"]["content"] == "w0 w1 w2 w3 "


async def test_stop_mid_answer_keeps_the_text_as_interrupted(dave: Caller) -> None:
    session = await dave.new_session("claude")
    raw, stopped = "", False
    async with dave.http.stream(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "[[slow 200 0.03]]", "response_mode": "streaming"},
    ) as response:
        async for text in response.aiter_text():
            raw += text
            if raw.count("event: delta") >= 3 and not stopped:
                stop = await dave.http.post(f"/v1/sessions/{session['id']}/stop")
                stopped = stop.json()["stopped"]
    final = parse_sse(raw)[-1]["data"]["message"]
    assert final["status"] == "interrupted" and 3 <= len(final["content"].split()) < 200
    stored = (await dave.history(session["id"]))["data"][1]
    assert stored["status"] == "interrupted" and stored["content"] == final["content"]


@pytest.mark.parametrize(
    ("status", "our_status", "code"),
    [
        (400, 502, "upstream_rejected"),
        (401, 502, "upstream_auth_failed"),
        (402, 503, "upstream_quota_exceeded"),
        (403, 502, "upstream_auth_failed"),
        (404, 502, "upstream_not_found"),
        (413, 413, "upstream_request_too_large"),
        (429, 429, "upstream_rate_limited"),
        (500, 502, "upstream_error"),
        (504, 504, "upstream_timeout"),
        (529, 503, "upstream_overloaded"),
    ],
)
@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_http_errors_map_to_chatgate_codes(
    dave: Caller, status: int, our_status: int, code: str, mode: str
) -> None:
    session = await dave.new_session("claude")
    response = await send(dave, session["id"], f"[[status {status}]]", mode)
    assert response.status_code == our_status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]
    assert body["message"]["status"] == "failed"
    if status == 429:
        assert response.headers["retry-after"] == "2"
    else:
        # Anthropic's request id travels in the message, for a support ticket.
        assert "request id req_" in body["error"]["message"]


async def test_silent_engine_is_a_timeout(dave: Caller) -> None:
    session = await dave.new_session("claude-impatient")
    response = await send(dave, session["id"], "[[hang]]")
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "upstream_timeout"
