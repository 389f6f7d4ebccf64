"""Function tools over the Responses API: a `function_call` item, the client's
`function_call_output` continuing the stored conversation, the answer using the result; the
calls and results kept in the session, shown by the history API and sealed at rest."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Gateway
from tests.responses.conftest import WEATHER, Client, session_of


def _call(response: Any) -> Any:
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1, response.output
    return calls[0]


def test_a_function_tool_loop_continues_the_conversation(gateway: Gateway, alice: Client) -> None:
    asked = alice.sdk.responses.create(
        model="echo",
        input="weather in Paris?",
        tools=[WEATHER],
    )
    assert asked.status == "completed"
    call = _call(asked)
    assert call.name == "get_weather" and call.status == "completed"
    assert call.id and call.id.startswith("fc_") and call.call_id
    assert set(json.loads(call.arguments)) == {"city"}
    assert asked.output_text == ""
    assert asked.tools[0].type == "function" and asked.tools[0].name == "get_weather"
    sent = gateway.double.api.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"

    answered = alice.sdk.responses.create(
        model="echo",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22 C, sunny"}],
        tools=[WEATHER],
    )
    assert answered.output_text == "echo: 22 C, sunny"
    messages = gateway.double.api.requests[-1]["messages"]
    assert messages[-2]["role"] == "assistant"
    assert messages[-2]["tool_calls"][0]["id"] == call.call_id
    assert messages[-2]["tool_calls"][0]["function"]["arguments"] == call.arguments
    assert messages[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "22 C, sunny"}

    history = alice.history(session_of(asked))
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "weather in Paris?"),
        ("assistant", ""),
        ("tool", "22 C, sunny"),
        ("assistant", "echo: 22 C, sunny"),
    ]
    assert history[1]["tool_calls"] == [
        {"id": call.call_id, "name": "get_weather", "arguments": call.arguments}
    ]
    assert history[2]["tool_call_id"] == call.call_id
    assert history[0]["tool_calls"] is None and history[0]["tool_call_id"] is None


def test_output_items_sent_back_as_input_work_without_storage(alice: Client) -> None:
    asked = alice.sdk.responses.create(
        model="echo",
        input="weather in Oslo?",
        tools=[WEATHER],
        store=False,
    )
    call = _call(asked)
    items: Any = [
        {"role": "user", "content": "weather in Oslo?"},
        *[item.model_dump(exclude_none=True) for item in asked.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "-3 C"},
    ]
    answered = alice.sdk.responses.create(model="echo", store=False, tools=[WEATHER], input=items)
    assert answered.output_text == "echo: -3 C"


def test_tool_choice_none_answers_in_text(alice: Client) -> None:
    reply = alice.sdk.responses.create(
        model="echo",
        input="just talk",
        tools=[WEATHER],
        tool_choice="none",
    )
    assert reply.output_text == "echo: just talk"
    assert reply.tool_choice == "none"


def stored_uuid(value: str, database_url: str) -> str:
    """A UUID as the database compares it: SQLite keeps SQLAlchemy's Uuid as 32 hex digits."""
    return value.replace("-", "") if database_url.startswith("sqlite") else value


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_calls_and_responses_are_sealed_at_rest(
    gateway: Gateway, alice: Client, database_url: str
) -> None:
    asked = alice.sdk.responses.create(
        model="echo",
        input="weather in Rome?",
        tools=[WEATHER],
    )
    call = _call(asked)
    alice.sdk.responses.create(
        model="echo",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "30 C"}],
    )
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            body = (
                await conn.execute(
                    text("SELECT body FROM responses WHERE id = :id"), {"id": asked.id}
                )
            ).scalar_one()
            rows = (
                await conn.execute(
                    text(
                        "SELECT role, tool_calls, tool_call_id FROM messages "
                        "WHERE session_id = :s ORDER BY id"
                    ),
                    {"s": stored_uuid(session_of(asked), database_url)},
                )
            ).all()
    finally:
        await engine.dispose()
    assert body.startswith("cg1:") and "Rome" not in body
    assert [r.role for r in rows] == ["user", "assistant", "tool", "assistant"]
    assert rows[1].tool_calls.startswith("cg1:") and "get_weather" not in rows[1].tool_calls
    assert rows[2].tool_call_id == call.call_id
    assert rows[0].tool_calls is None and rows[3].tool_calls is None


def test_chatgates_own_turn_continues_a_session_with_tool_messages(
    gateway: Gateway, alice: Client
) -> None:
    asked = alice.sdk.responses.create(
        model="echo",
        input="weather in Bern?",
        tools=[WEATHER],
    )
    call = _call(asked)
    alice.sdk.responses.create(
        model="echo",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "12 C"}],
    )
    sent = alice.http.post(
        f"/v1/sessions/{session_of(asked)}/messages",
        json={"content": "thanks", "response_mode": "blocking"},
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["message"]["content"] == "echo: thanks"
    request = gateway.double.api.requests[-1]
    # Told in words, so that an engine without tools can go on too.
    assert "tools" not in request
    assert request["messages"][1:] == [
        {"role": "user", "content": "weather in Bern?"},
        {
            "role": "assistant",
            "content": f"[called tool get_weather ({call.call_id}) with {call.arguments}]",
        },
        {"role": "user", "content": f"[result of tool call {call.call_id}]\n12 C"},
        {"role": "assistant", "content": "echo: 12 C"},
        {"role": "user", "content": "thanks"},
    ]


def test_an_output_of_no_call_is_refused(gateway: Gateway, alice: Client) -> None:
    calls = len(gateway.double.api.requests)
    with pytest.raises(openai.BadRequestError) as info:
        alice.sdk.responses.create(
            model="echo",
            input=[{"type": "function_call_output", "call_id": "call_nobody", "output": "1"}],
        )
    assert info.value.code == "invalid_request"
    assert len(gateway.double.api.requests) == calls


def test_input_items_list_what_each_response_was_given(alice: Client, bob: Client) -> None:
    asked = alice.sdk.responses.create(
        model="echo",
        input=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Lima?"}],
        tools=[WEATHER],
    )
    call = _call(asked)
    answered = alice.sdk.responses.create(
        model="echo",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
    )
    first = alice.sdk.responses.input_items.list(asked.id, order="asc")
    assert [(i.type, getattr(i, "role", None)) for i in first.data] == [
        ("message", "system"),
        ("message", "user"),
    ]
    assert first.data[1].model_dump()["content"][0]["text"] == "Lima?"
    (output,) = alice.sdk.responses.input_items.list(answered.id).data
    assert output.type == "function_call_output"
    assert (output.call_id, output.output) == (call.call_id, "18 C")
    paged = alice.sdk.responses.input_items.list(asked.id, limit=1)
    assert [i.id for i in paged] == [i.id for i in reversed(first.data)]  # every page, newest first
    with pytest.raises(openai.NotFoundError):
        bob.sdk.responses.input_items.list(asked.id)
