"""The Dify engine, through chatgate's own HTTP API, against a double of Dify's Service API."""

from __future__ import annotations

import asyncio
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
from tests.doubles.dify_api import REPLACEMENT, DifyDouble
from tests.doubles.server import serve_app
from tests.runner import run_chatgate

APP_KEY = "app-dify-double"


def dify_provider(provider_id: str, url: str, **fields: Any) -> ProviderConfig:
    values = {"timeouts": Timeouts(connect=2, first_token=3, total=20), **fields}
    return ProviderConfig(
        id=provider_id, type="dify", base_url=f"{url}/v1", api_key_env="DIFY_APP_KEY", **values
    )


def assistant(assistant_id: str, provider: str) -> AssistantConfig:
    return AssistantConfig(
        id=assistant_id,
        name=assistant_id,
        provider=provider,
        model="dify-app",
        system_prompt="Not sent: a Dify app has its own prompt.",
        max_context_tokens=4000,
        max_answer_tokens=200,
        guards=GUARDS_OFF,
    )


@dataclass
class DifyGateway:
    url: str
    settings: Settings
    dify: DifyDouble


@pytest.fixture(scope="module")
def dify_gateway(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DifyGateway]:
    if database_url.startswith("sqlite"):
        # A file of its own: starting a chatgate on SQLite recovers every unfinished answer.
        database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('dify') / 'chatgate.db'}"
    os.environ["DIFY_APP_KEY"] = APP_KEY
    dify = DifyDouble(api_key=APP_KEY)
    with serve_app(dify.app()) as url:
        settings = Settings(
            database_url=database_url,
            auth_mode="jwt",
            jwt_secret=JWT_SECRET,
            jwt_audience=JWT_AUDIENCE,
            stream_flush_seconds=0.2,
            providers=[
                dify_provider("dify", url),
                dify_provider("dify-blocking", url, stream=False),
                dify_provider("dify-completion", url, dify_app_type="completion"),
                dify_provider(
                    "dify-impatient", url, timeouts=Timeouts(connect=2, first_token=0.5, total=5)
                ),
            ],
            assistants=[
                assistant("chat", "dify"),
                assistant("chat-blocking", "dify-blocking"),
                assistant("writer", "dify-completion"),
                assistant("impatient", "dify-impatient"),
                assistant("chat-stop", "dify").model_copy(update={"stream_on_disconnect": "stop"}),
            ],
        )
        with run_chatgate(settings) as gateway_url:
            yield DifyGateway(url=gateway_url, settings=settings, dify=dify)


@pytest.fixture
async def carol(dify_gateway: DifyGateway) -> AsyncIterator[Caller]:
    user_id = f"carol-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {make_token(user_id)}"}
    async with httpx.AsyncClient(base_url=dify_gateway.url, headers=headers, timeout=30) as http:
        yield Caller(user_id=user_id, http=http)


async def send(
    caller: Caller, session_id: str, content: str, mode: str = "blocking"
) -> httpx.Response:
    return await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, "response_mode": mode}
    )


def sent_to_dify(dify: DifyDouble, query: str) -> dict[str, Any]:
    found = [r for r in dify.requests if r.get("query") == query]
    assert found, f"Dify never received {query!r}"
    return found[-1]


async def wait_for(condition: Any, what: str) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.parametrize("assistant_id", ["chat", "chat-blocking"])
async def test_blocking_answer_is_stored_with_dify_usage(
    carol: Caller, dify_gateway: DifyGateway, assistant_id: str
) -> None:
    session = await carol.new_session(assistant_id)
    content = f"hello dify {assistant_id}"
    response = await send(carol, session["id"], content)
    assert response.status_code == 200, response.text
    message = response.json()["message"]
    assert message["content"] == f"echo: {content}"
    assert message["status"] == "complete"
    assert message["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    sent = sent_to_dify(dify_gateway.dify, content)
    expected_mode = "blocking" if assistant_id == "chat-blocking" else "streaming"
    assert sent["response_mode"] == expected_mode
    assert sent["inputs"] == {} and sent["conversation_id"] == ""
    stored = (await carol.history(session["id"]))["data"]
    assert [m["content"] for m in stored] == [content, f"echo: {content}"]


async def test_streamed_answer_sends_deltas_and_is_stored(carol: Caller) -> None:
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], "one two three four", "streaming")
    events = parse_sse(response.text)
    assert events[0]["event"] == "message_start"
    assert events[-1]["event"] == "message_end"
    deltas = [e["data"]["text"] for e in events if e["event"] == "delta"]
    assert len(deltas) == 5
    final = events[-1]["data"]["message"]
    assert "".join(deltas) == final["content"] == "echo: one two three four"
    assert events[-1]["data"]["usage"]["completion_tokens"] == 5


async def test_conversation_id_is_kept_and_dify_remembers(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    dify = dify_gateway.dify
    session = await carol.new_session("chat")
    await send(carol, session["id"], "my name is Carol")
    first = sent_to_dify(dify, "my name is Carol")
    assert first["conversation_id"] == "" and first["user"] == carol.user_id
    await send(carol, session["id"], "I like tea", "streaming")
    second = sent_to_dify(dify, "I like tea")
    conversation_id = second["conversation_id"]
    assert conversation_id in dify.conversations
    assert dify.conversations[conversation_id].user == carol.user_id
    recalled = await send(carol, session["id"], "[[recall]]")
    assert recalled.json()["message"]["content"] == "you said: my name is Carol | I like tea"
    assert sent_to_dify(dify, "[[recall]]")["conversation_id"] == conversation_id
    # Only the new query goes to Dify, never chatgate's copy of the history.
    assert set(second) == {"inputs", "query", "response_mode", "user", "conversation_id"}
    # Another session is another conversation.
    other = await carol.new_session("chat")
    await send(carol, other["id"], "[[recall]] again")
    assert sent_to_dify(dify, "[[recall]] again")["conversation_id"] == ""


async def test_blocking_app_keeps_the_conversation_too(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    session = await carol.new_session("chat-blocking")
    await send(carol, session["id"], "remember plums")
    recalled = await send(carol, session["id"], "[[recall]] plums")
    assert recalled.json()["message"]["content"] == "you said: remember plums"
    sent = sent_to_dify(dify_gateway.dify, "[[recall]] plums")
    assert sent["conversation_id"] and sent["user"] == carol.user_id


async def test_stop_mid_answer_stops_the_dify_task_as_the_same_user(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    dify = dify_gateway.dify
    session = await carol.new_session("chat")
    raw, stopped = "", False
    async with carol.http.stream(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "[[slow 200 0.03]]", "response_mode": "streaming"},
    ) as response:
        async for text in response.aiter_text():
            raw += text
            if raw.count("event: delta") >= 4 and not stopped:
                stop = await carol.http.post(f"/v1/sessions/{session['id']}/stop")
                stopped = stop.json()["stopped"]
                assert stopped is True
    events = parse_sse(raw)
    final = events[-1]["data"]["message"]
    assert final["status"] == "interrupted"
    streamed = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
    assert final["content"] == streamed and 4 <= len(streamed.split()) < 200
    stored = (await carol.history(session["id"]))["data"][1]
    assert stored["status"] == "interrupted" and stored["content"] == streamed
    task_ids = {t.id for t in dify.tasks.values() if t.user == carol.user_id}
    await wait_for(lambda: any(s["task_id"] in task_ids for s in dify.stops), "a stop call")
    stop_call = next(s for s in dify.stops if s["task_id"] in task_ids)
    assert stop_call == {"task_id": stop_call["task_id"], "user": carol.user_id, "stopped": True}


async def test_client_going_away_also_stops_the_dify_task(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    """With `stream_on_disconnect: stop` (the default lets the answer go on)."""
    dify = dify_gateway.dify
    session = await carol.new_session("chat-stop")
    async with (
        httpx.AsyncClient(base_url=dify_gateway.url, headers=carol.http.headers) as other,
        other.stream(
            "POST",
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "[[slow 300 0.02]]", "response_mode": "streaming"},
        ) as response,
    ):
        raw = ""
        async for text in response.aiter_text():
            raw += text
            if raw.count("event: delta") >= 3:
                break
    task_ids = {t.id for t in dify.tasks.values() if t.user == carol.user_id}
    await wait_for(lambda: any(s["task_id"] in task_ids for s in dify.stops), "a stop call")
    assert all(s["user"] == carol.user_id for s in dify.stops if s["task_id"] in task_ids)
    message_id = parse_sse(raw)[0]["data"]["message_id"]

    async def stored() -> dict[str, Any]:
        page = await carol.history(session["id"])
        return next(m for m in page["data"] if m["id"] == message_id)

    for _ in range(100):
        if (answer := await stored())["status"] == "interrupted":
            break
        await asyncio.sleep(0.05)
    assert answer["status"] == "interrupted"
    assert answer["content"].startswith("w0 w1 w2")


async def test_message_replace_replaces_the_answer_so_far(carol: Caller) -> None:
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], "flag this [[replace]]", "streaming")
    events = parse_sse(response.text)
    deltas = [e["data"] for e in events if e["event"] == "delta"]
    assert deltas[-1] == {"text": REPLACEMENT, "replace": True}
    assert all("replace" not in d for d in deltas[:-1]) and len(deltas) > 1
    assert events[-1]["data"]["message"]["content"] == REPLACEMENT
    assert (await carol.history(session["id"]))["data"][1]["content"] == REPLACEMENT
    blocking = await send(carol, session["id"], "again [[replace]]")
    assert blocking.json()["message"]["content"] == REPLACEMENT


@pytest.mark.parametrize(
    ("directive", "expected"),
    [
        ("[[agent]]", "echo: as an agent [[agent]]"),
        ("[[workflow]]", "echo: as an agent [[workflow]]"),
        ("[[ping]]", "echo: as an agent [[ping]]"),
    ],
)
async def test_agent_workflow_and_ping_events_leave_only_the_answer(
    carol: Caller, directive: str, expected: str
) -> None:
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], f"as an agent {directive}", "streaming")
    events = parse_sse(response.text)
    assert events[-1]["event"] == "message_end"
    assert events[-1]["data"]["message"]["content"] == expected
    assert events[-1]["data"]["message"]["status"] == "complete"


async def test_events_shaped_like_the_docs_example_are_understood(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    # No task_id anywhere, and message_end names the message `id`.
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], "as documented [[doc-example]]", "streaming")
    final = parse_sse(response.text)[-1]
    assert final["event"] == "message_end"
    assert final["data"]["message"]["content"] == "echo: as documented [[doc-example]]"
    assert final["data"]["usage"]["completion_tokens"] == 4
    await send(carol, session["id"], "[[recall]] documented")
    assert sent_to_dify(dify_gateway.dify, "[[recall]] documented")["conversation_id"]


async def test_completion_app_sends_the_query_as_input_without_conversation(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    session = await carol.new_session("writer")
    for mode in ("blocking", "streaming"):
        response = await send(carol, session["id"], f"translate this {mode}", mode)
        assert response.status_code == 200, response.text
        sent = [r for r in dify_gateway.dify.requests if r["inputs"].get("query")][-1]
        assert sent["inputs"] == {"query": f"translate this {mode}"}
        assert sent["query"] == f"translate this {mode}"
        assert "conversation_id" not in sent and sent["user"] == carol.user_id
    stored = (await carol.history(session["id"]))["data"]
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [
        "echo: translate this blocking",
        "echo: translate this streaming",
    ]


async def test_stopping_a_completion_app_uses_its_own_stop_endpoint(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    session = await carol.new_session("writer")
    async with carol.http.stream(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "[[slow 200 0.03]]", "response_mode": "streaming"},
    ) as response:
        async for text in response.aiter_text():
            if "event: delta" in text:
                await carol.http.post(f"/v1/sessions/{session['id']}/stop")
                break
    task_ids = {t.id for t in dify_gateway.dify.tasks.values() if t.user == carol.user_id}
    await wait_for(
        lambda: any(s["task_id"] in task_ids and s["stopped"] for s in dify_gateway.dify.stops),
        "a stop call",
    )


@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [
        ("[[status 400 invalid_param]]", 502, "upstream_rejected"),
        ("[[status 400 app_unavailable]]", 503, "upstream_app_unavailable"),
        ("[[status 400 provider_not_initialize]]", 503, "upstream_not_configured"),
        ("[[status 400 provider_quota_exceeded]]", 503, "upstream_quota_exceeded"),
        ("[[status 400 model_currently_not_support]]", 503, "upstream_model_unavailable"),
        ("[[status 400 completion_request_error]]", 502, "upstream_error"),
        ("[[status 401]]", 502, "upstream_auth_failed"),
        ("[[status 429]]", 429, "upstream_rate_limited"),
        ("[[status 500 internal_server_error]]", 502, "upstream_error"),
    ],
)
@pytest.mark.parametrize("mode", ["blocking", "streaming"])
async def test_dify_errors_map_to_chatgate_codes(
    carol: Caller, directive: str, status: int, code: str, mode: str
) -> None:
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], directive, mode)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]
    assert body["message"]["status"] == "failed"
    if status == 429:
        assert response.headers["retry-after"] == "1"


async def test_error_event_mid_stream_keeps_the_text_as_failed(carol: Caller) -> None:
    session = await carol.new_session("chat")
    response = await send(
        carol, session["id"], "[[error-after 5 provider_quota_exceeded]]", "streaming"
    )
    events = parse_sse(response.text)
    error = events[-1]
    assert error["event"] == "error"
    assert error["data"]["error"]["code"] == "upstream_quota_exceeded"
    assert error["data"]["message"]["status"] == "failed"
    assert error["data"]["message"]["content"] == "w0 w1 w2 w3 w4 "
    stored = (await carol.history(session["id"]))["data"][1]
    assert stored["status"] == "failed" and stored["content"] == "w0 w1 w2 w3 w4 "


async def test_dify_dying_mid_stream_keeps_the_text_as_failed(carol: Caller) -> None:
    session = await carol.new_session("chat")
    response = await send(carol, session["id"], "[[die-after 3]]", "streaming")
    error = parse_sse(response.text)[-1]
    assert error["event"] == "error" and error["data"]["error"]["code"] == "upstream_error"
    assert error["data"]["message"]["content"] == "w0 w1 w2 "


async def test_lost_conversation_is_reported_and_the_next_message_starts_anew(
    carol: Caller, dify_gateway: DifyGateway
) -> None:
    dify = dify_gateway.dify
    session = await carol.new_session("chat")
    await send(carol, session["id"], "before the purge")
    await send(carol, session["id"], "still here")
    conversation_id = sent_to_dify(dify, "still here")["conversation_id"]
    assert conversation_id
    dify.forget(conversation_id)
    lost = await send(carol, session["id"], "are you there?")
    assert lost.status_code == 502, lost.text
    assert lost.json()["error"]["code"] == "upstream_conversation_lost"
    assert lost.json()["message"]["status"] == "failed"
    again = await send(carol, session["id"], "[[recall]] anew")
    assert again.status_code == 200, again.text
    assert again.json()["message"]["content"] == "you said: nothing"
    assert sent_to_dify(dify, "[[recall]] anew")["conversation_id"] == ""


async def test_silent_app_is_a_timeout(carol: Caller) -> None:
    session = await carol.new_session("impatient")
    response = await send(carol, session["id"], "[[hang]]", "streaming")
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "upstream_timeout"
