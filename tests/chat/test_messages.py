"""Sending messages: blocking and streaming, and nothing lost on stop, disconnect or failure."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from chatgate.providers.http import opaque_user
from tests.conftest import Caller, Gateway, parse_sse


async def wait_for_status(
    caller: Caller, session_id: str, message_id: str, status: str
) -> dict[str, Any]:
    for _ in range(100):
        page = await caller.history(session_id)
        found = [m for m in page["data"] if m["id"] == message_id]
        if found and found[0]["status"] == status:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached {status}: {found}")


async def test_blocking_answer_is_stored_with_usage(alice: Caller) -> None:
    session = await alice.new_session("echo")
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "hello there", "response_mode": "blocking"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_message"]["content"] == "hello there"
    assert body["message"]["content"] == "echo: hello there"
    assert body["message"]["status"] == "complete"
    assert body["message"]["usage"]["completion_tokens"] > 0
    assert body["message"]["model"] == "double-echo"
    page = await alice.history(session["id"])
    assert [m["role"] for m in page["data"]] == ["user", "assistant"]
    assert page["data"][1]["content"] == "echo: hello there"
    fetched = await alice.http.get(f"/v1/sessions/{session['id']}")
    assert fetched.json()["message_count"] == 2
    assert fetched.json()["title"] == "hello there"


async def test_an_answer_with_nul_characters_is_kept(alice: Caller) -> None:
    # PostgreSQL refuses NUL in text: stored as it came, the whole answer would be lost.
    session = await alice.new_session("echo")
    for mode in ("blocking", "streaming"):
        response = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "[[nul]]", "response_mode": mode},
        )
        assert response.status_code == 200, response.text
    answers = [m for m in (await alice.history(session["id"]))["data"] if m["role"] == "assistant"]
    assert [(m["status"], m["content"]) for m in answers] == [
        ("complete", "before\ufffd after"),
        ("complete", "before\ufffd after"),
    ]


async def test_stream_sends_only_new_text_with_increasing_ids(alice: Caller) -> None:
    session = await alice.new_session("echo")
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "one two three four", "response_mode": "streaming"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [e["event"] for e in events]
    assert names[0] == "message_start" and names[-1] == "message_end"
    assert set(names[1:-1]) == {"delta"}
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    deltas = [e["data"]["text"] for e in events if e["event"] == "delta"]
    assert len(deltas) >= 4
    final = events[-1]["data"]["message"]
    assert "".join(deltas) == final["content"] == "echo: one two three four"
    assert final["status"] == "complete"
    assert events[0]["data"]["message_id"] == final["id"]
    assert events[-1]["data"]["usage"]["completion_tokens"] > 0


async def test_user_message_is_committed_before_the_engine_answers(alice: Caller) -> None:
    session = await alice.new_session("echo")
    async with alice.http.stream(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "[[slow 40 0.05]]", "response_mode": "streaming"},
    ) as response:
        async for _ in response.aiter_lines():
            page = await alice.history(session["id"])
            assert page["data"][0]["role"] == "user"
            assert page["data"][0]["status"] == "complete"
            assert page["data"][1]["status"] == "streaming"
            break
    await asyncio.sleep(0.1)


async def test_stop_keeps_the_text_so_far(alice: Caller) -> None:
    session = await alice.new_session("echo")
    received = ""
    async with alice.http.stream(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "[[slow 100 0.03]]", "response_mode": "streaming"},
    ) as response:
        raw = ""
        stopped: dict[str, Any] = {}
        async for chunk in response.aiter_text():
            raw += chunk
            if raw.count("event: delta") >= 5 and not stopped:
                stop = await alice.http.post(f"/v1/sessions/{session['id']}/stop")
                assert stop.status_code == 200
                stopped = stop.json()
                assert stopped["stopped"] is True
                assert stopped["message"]["status"] == "interrupted"
        received = raw
    events = parse_sse(received)
    assert events[-1]["event"] == "message_end"
    final = events[-1]["data"]["message"]
    assert final["status"] == "interrupted"
    streamed = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
    assert final["content"] == streamed
    assert 5 <= len(streamed.split()) < 100
    stored = (await alice.history(session["id"]))["data"][1]
    assert stored["status"] == "interrupted" and stored["content"] == streamed
    again = await alice.http.post(f"/v1/sessions/{session['id']}/stop")
    assert again.json() == {"stopped": False, "message": None}


async def test_a_client_going_away_leaves_the_answer_to_be_stored_whole(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("echo")
    async with (
        httpx.AsyncClient(base_url=gateway.url, headers=alice.http.headers) as other,
        other.stream(
            "POST",
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "[[slow 60 0.02]] going away", "response_mode": "streaming"},
        ) as response,
    ):
        raw = ""
        async for chunk in response.aiter_text():
            raw += chunk
            if raw.count("event: delta") >= 3:
                break
    # The connection is closed here, mid-answer: the answer goes on (stream_on_disconnect:
    # continue, the default; tests/chat/test_resume.py has `stop`).
    start = parse_sse(raw)[0]["data"]
    stored = await wait_for_status(alice, session["id"], start["message_id"], "complete")
    assert stored["content"] == "".join(f"w{i} " for i in range(60))
    assert stored["error"] is None


async def test_engine_dying_mid_stream_sends_error_and_keeps_text(alice: Caller) -> None:
    session = await alice.new_session("echo")
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "[[die-after 6]]", "response_mode": "streaming"},
    )
    events = parse_sse(response.text)
    assert events[-1]["event"] == "error"
    error = events[-1]["data"]
    assert error["error"]["code"] == "upstream_error"
    assert error["error"]["trace_id"] == response.headers["x-trace-id"]
    assert error["message"]["status"] == "failed"
    assert error["message"]["content"] == "w0 w1 w2 w3 w4 w5 "
    stored = (await alice.history(session["id"]))["data"][1]
    assert stored["status"] == "failed" and stored["content"] == "w0 w1 w2 w3 w4 w5 "


async def test_engine_error_before_first_token_is_a_clear_status(alice: Caller) -> None:
    session = await alice.new_session("echo")
    for mode in ("blocking", "streaming"):
        response = await alice.http.post(
            f"/v1/sessions/{session['id']}/messages",
            json={"content": "[[status 500]]", "response_mode": mode},
        )
        assert response.status_code == 502, response.text
        body = response.json()
        assert body["error"]["code"] == "upstream_error"
        assert body["message"]["status"] == "failed"
    page = await alice.history(session["id"])
    assert [m["role"] for m in page["data"]] == ["user", "assistant"] * 2
    assert all(m["status"] == "complete" for m in page["data"] if m["role"] == "user")


async def test_engine_rate_limit_and_timeout_map_to_statuses(alice: Caller) -> None:
    session = await alice.new_session("echo")
    limited = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "[[status 429]]"}
    )
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "upstream_rate_limited"
    assert limited.headers["retry-after"] == "2"
    hung = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": "[[hang]]"}
    )
    assert hung.status_code == 504
    assert hung.json()["error"]["code"] == "upstream_timeout"


async def test_second_message_while_answering_is_a_conflict(alice: Caller) -> None:
    session = await alice.new_session("echo")
    async with alice.http.stream(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "[[slow 30 0.05]]", "response_mode": "streaming"},
    ) as response:
        async for _ in response.aiter_lines():
            busy = await alice.http.post(
                f"/v1/sessions/{session['id']}/messages", json={"content": "and now?"}
            )
            assert busy.status_code == 409
            assert busy.json()["error"]["code"] == "turn_in_progress"
            break
    page = await alice.history(session["id"])
    assert [m["content"] for m in page["data"] if m["role"] == "user"] == ["[[slow 30 0.05]]"]


async def test_async_mode_returns_a_task_to_poll(alice: Caller) -> None:
    session = await alice.new_session("echo")
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "later please", "response_mode": "async"},
    )
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    for _ in range(100):
        task = (await alice.http.get(f"/v1/tasks/{task_id}")).json()
        if task["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert task["status"] == "succeeded"
    assert task["message"]["content"] == "echo: later please"


async def test_trace_id_travels_to_the_engine_and_the_message(
    alice: Caller, gateway: Gateway
) -> None:
    session = await alice.new_session("echo")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": "trace me"},
        headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    assert response.headers["x-trace-id"] == trace
    sent = gateway.double.api.headers[-1]
    assert sent["traceparent"].split("-")[1] == trace
    assert gateway.double.api.requests[-1]["user"] == opaque_user(alice.user_id)
