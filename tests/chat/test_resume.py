"""Resuming an answer's stream (API.md, "Resuming a stream"): the same events with the same ids,
after the client's last one, live until the end, and after it; the client going away does not
end the answer unless its assistant says so."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest

from chatgate.core.config import Settings
from tests.conftest import (
    Caller,
    Gateway,
    assert_error,
    make_token,
    open_caller,
    parse_sse,
    remote_only_settings,
    serve_chatgate,
)

# Each question new: an answer the cache holds would not be streamed.
NONCE = secrets.token_hex(4)


async def _start_and_leave(caller: Caller, session_id: str, content: str, deltas: int) -> str:
    """Starts a streamed answer, reads until `deltas` deltas have come, and goes away."""
    raw = ""
    async with (
        httpx.AsyncClient(base_url=str(caller.http.base_url), headers=caller.http.headers) as own,
        own.stream(
            "POST",
            f"/v1/sessions/{session_id}/messages",
            json={"content": content, "response_mode": "streaming"},
        ) as response,
    ):
        async for chunk in response.aiter_text():
            raw += chunk
            if raw.count("event: delta") >= deltas and raw.endswith("\n\n"):
                break
    return raw


def _ids(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["id"]) for e in events]


def _text(events: list[dict[str, Any]]) -> str:
    text = ""
    for event in events:
        if event["event"] == "delta":
            text = (
                event["data"]["text"]
                if event["data"].get("replace")
                else text + event["data"]["text"]
            )
    return text


async def _events(caller: Caller, path: str, **headers: str) -> httpx.Response:
    return await caller.http.get(path, headers=headers, timeout=30)


async def test_a_left_stream_goes_on_and_resumes_after_its_last_event(alice: Caller) -> None:
    session = await alice.new_session("echo")
    raw = await _start_and_leave(alice, session["id"], f"[[slow 30 0.05]] {NONCE}", deltas=4)
    seen = parse_sse(raw)
    start = seen[0]["data"]
    path = f"/v1/sessions/{session['id']}/messages/{start['message_id']}/events"
    rest = parse_sse((await _events(alice, path, **{"Last-Event-ID": seen[-1]["id"]})).text)
    # Contiguous ids: nothing sent twice, nothing skipped; the answer went on without its client.
    assert _ids(seen + rest) == list(range(1, len(seen) + len(rest) + 1))
    assert rest[-1]["event"] == "message_end"
    final = rest[-1]["data"]["message"]
    assert final["status"] == "complete"
    assert _text(seen + rest) == final["content"] == " ".join(f"w{i}" for i in range(30)) + " "
    stored = (await alice.history(session["id"]))["data"][1]
    assert stored["content"] == final["content"] and stored["status"] == "complete"


async def test_an_ended_answer_replays_exactly_as_it_was_streamed(alice: Caller) -> None:
    session = await alice.new_session("echo")
    original = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": f"tell me twice {NONCE}", "response_mode": "streaming"},
    )
    first = parse_sse(original.text)
    path = f"/v1/sessions/{session['id']}/messages/{first[0]['data']['message_id']}/events"
    again = await _events(alice, path)
    assert again.headers["content-type"].startswith("text/event-stream")
    assert parse_sse(again.text) == first
    # After a given id, by query or header (the header wins, as EventSource sends it).
    tail = parse_sse((await alice.http.get(path, params={"after": 2})).text)
    assert tail == first[2:]
    both = await alice.http.get(path, params={"after": 1}, headers={"Last-Event-ID": "3"})
    assert parse_sse(both.text) == first[3:]
    assert (await alice.http.get(path, params={"after": len(first)})).text == ""


async def test_a_resumed_stream_tails_live_events_until_the_end(alice: Caller) -> None:
    session = await alice.new_session("echo")
    raw = await _start_and_leave(alice, session["id"], f"[[slow 40 0.05]] {NONCE}", deltas=1)
    start = parse_sse(raw)[0]["data"]
    path = f"/v1/sessions/{session['id']}/messages/{start['message_id']}/events"
    # From the start, while the answer is still being written: the log, then live.
    events: list[dict[str, Any]] = []
    async with alice.http.stream("GET", path) as response:
        raw_tail = ""
        async for chunk in response.aiter_text():
            raw_tail += chunk
        events = parse_sse(raw_tail)
    assert _ids(events) == list(range(1, len(events) + 1))
    assert events[0]["event"] == "message_start" and events[-1]["event"] == "message_end"
    assert len([e for e in events if e["event"] == "delta"]) == 40


async def test_resuming_refuses_bad_input_and_others_answers(alice: Caller, bob: Caller) -> None:
    session = await alice.new_session("echo")
    sent = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "hello"}
    )
    answer_id = sent.json()["message"]["id"]
    user_message_id = sent.json()["user_message"]["id"]
    path = f"/v1/sessions/{session['id']}/messages/{answer_id}/events"
    assert_error(
        await alice.http.get(path, headers={"Last-Event-ID": "seven"}), 400,
        "invalid_last_event_id",
    )  # fmt: skip
    assert_error(await alice.http.get(path, params={"after": -1}), 422, "validation_error")
    assert_error(await bob.http.get(path), 404, "session_not_found")
    assert_error(await bob.http.get(f"/v1/tasks/{answer_id}/events"), 404, "task_not_found")
    user_path = f"/v1/sessions/{session['id']}/messages/{user_message_id}/events"
    assert_error(await alice.http.get(user_path), 404, "message_not_found")
    other = await alice.new_session("echo")
    elsewhere = f"/v1/sessions/{other['id']}/messages/{answer_id}/events"
    assert_error(await alice.http.get(elsewhere), 404, "message_not_found")
    # A blocking answer has its events too.
    replay = parse_sse((await alice.http.get(path)).text)
    assert replay[-1]["data"]["message"]["content"] == sent.json()["message"]["content"]


async def test_an_async_task_has_the_same_events(alice: Caller) -> None:
    session = await alice.new_session("echo")
    queued = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": f"[[slow 10 0.05]] {NONCE}", "response_mode": "async"},
    )
    assert queued.status_code == 202
    task_id = queued.json()["task_id"]
    events = parse_sse((await _events(alice, f"/v1/tasks/{task_id}/events")).text)
    assert events[0]["event"] == "message_start"
    assert events[0]["data"]["message_id"] == task_id
    assert _ids(events) == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "message_end"
    assert _text(events) == events[-1]["data"]["message"]["content"]


async def test_an_assistant_may_stop_answers_whose_client_left(gateway: Gateway) -> None:
    admin_token = make_token("ops", admin=True)
    async with open_caller(gateway.url, "ops", token=admin_token) as admin:
        made = await admin.http.post(
            "/v1/admin/assistants",
            json={
                "id": "echo-stop", "name": "Echo that stops", "provider": "double",
                "model": "double-echo", "guards": {}, "stream_on_disconnect": "stop",
            },
        )  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["stream_on_disconnect"] == "stop"
    async with open_caller(gateway.url) as carol:
        session = await carol.new_session("echo-stop")
        raw = await _start_and_leave(carol, session["id"], f"[[slow 200 0.02]] {NONCE}", deltas=3)
        answer_id = parse_sse(raw)[0]["data"]["message_id"]
        path = f"/v1/sessions/{session['id']}/messages/{answer_id}/events"
        events = parse_sse((await _events(carol, path)).text)
        end = events[-1]["data"]["message"]
        assert end["status"] == "interrupted"
        assert end["error"]["code"] == "client_disconnected"
        assert 3 <= len(end["content"].split()) < 200
        assert _text(events) == end["content"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_expired_log_is_replayed_from_the_stored_answer(
    database_url: str, gateway: Gateway
) -> None:
    settings: Settings = remote_only_settings(
        database_url, gateway.double.url, stream_log_keep_seconds=0
    )
    async with serve_chatgate(settings) as url, open_caller(url) as dave:
        session = await dave.new_session("echo")
        sent = await dave.http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": f"keep me {NONCE}", "response_mode": "streaming"},
        )
        original = parse_sse(sent.text)
        await asyncio.sleep(0.05)
        path = f"/v1/sessions/{session['id']}/messages/{original[0]['data']['message_id']}/events"
        whole = parse_sse((await dave.http.get(path)).text)
        assert [e["event"] for e in whole] == ["message_start", "delta", "message_end"]
        assert whole[0] == original[0]
        assert whole[1]["data"] == {"text": _text(original), "replace": True}
        assert whole[-1]["data"]["message"] == original[-1]["data"]["message"]
        # After an id the client saw: the whole text replaces what it has, then the end.
        tail = parse_sse((await dave.http.get(path, headers={"Last-Event-ID": "3"})).text)
        assert _ids(tail) == [4, 5]
        assert tail[0]["data"]["replace"] is True and tail[1]["event"] == "message_end"
