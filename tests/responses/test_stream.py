"""Streamed responses: OpenAI's typed events in order with their sequence numbers, assembled by
the SDK's `client.responses.stream()`; a function call's arguments streamed; an engine failure
ending in `response.failed`; a client that goes away leaving what was produced stored."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai

from tests.conftest import Gateway, make_token
from tests.responses.conftest import WEATHER, Client, session_of

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
TEXT_END = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def raw_events(
    gateway: Gateway, user: str, body: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """The stream as sent: each event's name and data."""
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    response = httpx.post(
        f"{gateway.url}/v1/responses", json={**body, "stream": True}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_the_sdk_stream_helper_assembles_the_answer(alice: Client) -> None:
    with alice.sdk.responses.stream(model="echo", input="a b c d") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == "echo: a b c d" and final.status == "completed"
    kinds = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert kinds[:4] == TEXT_EVENTS and kinds[-4:] == TEXT_END
    assert kinds[4 : 4 + len(deltas)] == ["response.output_text.delta"] * len(deltas)
    assert len(deltas) >= 4 and "".join(d.delta for d in deltas) == "echo: a b c d"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.usage is not None and final.usage.output_tokens > 0
    # Stored as streamed, and continued like any other response.
    assert alice.sdk.responses.retrieve(final.id).output_text == "echo: a b c d"
    more = alice.sdk.responses.create(model="echo", input="e", previous_response_id=final.id)
    assert [m["content"] for m in alice.history(session_of(more))] == [
        "a b c d",
        "echo: a b c d",
        "e",
        "echo: e",
    ]


def test_raw_events_carry_their_names_and_one_item(gateway: Gateway, alice: Client) -> None:
    events = raw_events(gateway, alice.user_id, {"model": "echo", "input": "x y"})
    assert all(name == data["type"] for name, data in events)
    created, added, done, completed = events[0][1], events[2][1], events[-2][1], events[-1][1]
    assert created["response"]["status"] == "in_progress" and created["response"]["output"] == []
    item_id = added["item"]["id"]
    assert added["item"]["status"] == "in_progress" and added["output_index"] == 0
    for _, data in events[3:-1]:
        assert data["item_id"] == item_id if "item_id" in data else data["item"]["id"] == item_id
    assert done["item"]["content"] == [
        {"type": "output_text", "text": "echo: x y", "annotations": [], "logprobs": []}
    ]
    assert completed["response"]["id"] == created["response"]["id"]
    assert completed["response"]["output"] == [done["item"]]


def test_a_streamed_tool_loop(gateway: Gateway, alice: Client) -> None:
    with alice.sdk.responses.stream(
        model="echo",
        input="weather in Lima?",
        tools=[WEATHER],
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[2] == "response.output_item.added"
    pieces = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(pieces) >= 2  # the double streams arguments a few characters at a time
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert done.arguments == call.arguments == "".join(p.delta for p in pieces)
    assert json.loads(call.arguments)["city"]
    assert kinds[-2:] == ["response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))

    with alice.sdk.responses.stream(
        model="echo",
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
        tools=[WEATHER],
    ) as stream:
        answered = stream.get_final_response()
    assert answered.output_text == "echo: 18 C"
    history = alice.history(session_of(answered))
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[1]["tool_calls"][0]["arguments"] == call.arguments


def test_an_engine_failure_mid_stream_ends_with_response_failed(alice: Client) -> None:
    stream = alice.sdk.responses.create(model="echo", input="[[die-after 3]]", stream=True)
    events = list(stream)
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error is not None and last.response.error.code == "server_error"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    stored = alice.sdk.responses.retrieve(last.response.id)
    assert stored.status == "failed"
    answer = alice.history(session_of(stored))[-1]
    assert answer["status"] == "failed" and answer["content"] == "w0 w1 w2 "


def test_what_was_streamed_is_stored_when_the_client_goes_away(
    gateway: Gateway, alice: Client
) -> None:
    headers = {"Authorization": f"Bearer {make_token(alice.user_id)}"}
    body = {"model": "echo", "input": "[[slow 40 0.1]]", "stream": True}
    with httpx.stream(
        "POST", f"{gateway.url}/v1/responses", json=body, headers=headers, timeout=30
    ) as response:
        lines = response.iter_lines()
        response_id = None
        deltas = 0
        for line in lines:
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if data["type"] == "response.created":
                    response_id = data["response"]["id"]
                deltas += data["type"] == "response.output_text.delta"
                if deltas == 3:
                    break
    assert response_id is not None
    stored = None
    for _ in range(100):
        try:
            stored = alice.sdk.responses.retrieve(response_id)
            break
        except openai.NotFoundError:
            time.sleep(0.1)
    assert stored is not None and stored.status == "cancelled"
    assert stored.output_text.startswith("w0 w1 w2") and "w39" not in stored.output_text
    answer = alice.history(session_of(stored))[-1]
    assert answer["status"] == "interrupted" and answer["content"] == stored.output_text
