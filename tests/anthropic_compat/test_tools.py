"""Tool use through chatgate's Messages API with the official `anthropic` SDK: the model's
tool_use blocks, the client's tool_result blocks, streamed and not, on an OpenAI-compatible and an
Anthropic engine; tools and tool_choice as each engine receives them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message

from tests.anthropic_compat.conftest import TIME, WEATHER, ask, client
from tests.engines_gateway import EnginesGateway

ENGINES = ["gpt", "gpt-whole", "claude", "claude-whole"]
QUESTION = "what is the weather in Paris"


def follow_up(question: str, reply: Message, result: str, **extra: Any) -> list[dict[str, Any]]:
    """The conversation after the model's tool calls: each answered with `result`."""
    return [
        *ask(question),
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": b.id, "content": result, **extra}
                for b in reply.content
                if b.type == "tool_use"
            ],
        },
    ]


@pytest.mark.parametrize("model", ENGINES)
def test_a_tool_loop(engines: EnginesGateway, model: str) -> None:
    sdk = client(engines)
    first = sdk.messages.create(
        model=model, max_tokens=200, messages=ask(QUESTION), tools=[WEATHER]
    )
    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather"
    assert isinstance(call.input, dict) and set(call.input) == {"city"}
    answer = sdk.messages.create(
        model=model,
        max_tokens=200,
        messages=follow_up(QUESTION, first, "sunny, 21 C"),
        tools=[WEATHER],
    )
    assert answer.stop_reason == "end_turn"
    assert [block.type for block in answer.content] == ["text"]
    assert "sunny, 21 C" in answer.content[0].text


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_a_streamed_tool_loop(engines: EnginesGateway, model: str) -> None:
    sdk = client(engines)
    question = "weather and time in Oslo [[call-all]]"
    with sdk.messages.stream(
        model=model, max_tokens=200, messages=ask(question), tools=[WEATHER, TIME]
    ) as stream:
        pieces = [event for event in stream if event.type == "input_json"]
        first = stream.get_final_message()
    calls = [block for block in first.content if block.type == "tool_use"]
    assert [call.name for call in calls] == ["get_weather", "get_time"]
    assert len({call.id for call in calls}) == 2
    assert calls[1].input["hours24"] is True
    assert set(calls[0].input) == {"city"}
    assert len(pieces) > 2  # the input came in pieces, not whole
    assert first.stop_reason == "tool_use"
    with sdk.messages.stream(
        model=model,
        max_tokens=200,
        messages=follow_up(question, first, "done"),
        tools=[WEATHER, TIME],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: done done"
    assert final.stop_reason == "end_turn"


def test_text_before_the_calls_is_its_own_block(engines: EnginesGateway) -> None:
    with client(engines).messages.stream(
        model="claude",
        max_tokens=200,
        messages=ask("weather in Rome [[preface]]"),
        tools=[WEATHER],
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me call get_weather."


def test_tools_reach_an_openai_engine_as_functions(engines: EnginesGateway) -> None:
    client(engines).messages.create(
        model="gpt",
        max_tokens=100,
        messages=ask("the time please"),
        tools=[WEATHER, TIME],
        tool_choice={"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
    )
    sent = engines.openai.requests[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool["description"],
                "parameters": tool["input_schema"],
            },
        }
        for tool in (WEATHER, TIME)
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert sent["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("choice", "openai", "anthropic"),
    [
        ({"type": "any"}, "required", {"type": "any"}),
        ({"type": "auto"}, "auto", {"type": "auto"}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            "auto",
            {"type": "auto", "disable_parallel_tool_use": True},
        ),
        ({"type": "tool", "name": "get_weather"}, None, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_reaches_each_engine(
    engines: EnginesGateway, choice: dict[str, Any], openai: Any, anthropic: dict[str, Any]
) -> None:
    sdk = client(engines)
    for model in ("gpt", "claude"):
        reply = sdk.messages.create(
            model=model,
            max_tokens=100,
            messages=ask("weather in Lima"),
            tools=[WEATHER],
            tool_choice=choice,
        )
        assert reply.stop_reason == "tool_use"
    expected = openai or {"type": "function", "function": {"name": "get_weather"}}
    assert engines.openai.requests[-1]["tool_choice"] == expected
    assert engines.anthropic.requests[-1]["tool_choice"] == anthropic


def test_tool_choice_none_answers_in_text(engines: EnginesGateway) -> None:
    reply = client(engines).messages.create(
        model="gpt",
        max_tokens=100,
        messages=ask("no tools now"),
        tools=[WEATHER],
        tool_choice={"type": "none"},
    )
    assert reply.stop_reason == "end_turn"
    assert reply.content[0].text == "echo: no tools now"


def test_a_failed_tool_result_says_so(engines: EnginesGateway) -> None:
    sdk = client(engines)
    first = sdk.messages.create(
        model="gpt", max_tokens=200, messages=ask(QUESTION), tools=[WEATHER]
    )
    answer = sdk.messages.create(
        model="gpt",
        max_tokens=200,
        messages=follow_up(QUESTION, first, "no such city", is_error=True),
        tools=[WEATHER],
    )
    assert answer.content[0].text == "echo: Error: no such city"
    sent = engines.openai.requests[-1]["messages"]
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "Error: no such city"}
    assert sent[-2]["tool_calls"][0]["function"]["arguments"] == json.dumps(call.input)


def test_tool_result_blocks_and_text_after_them(engines: EnginesGateway) -> None:
    sdk = client(engines)
    first = sdk.messages.create(
        model="claude", max_tokens=200, messages=ask(QUESTION), tools=[WEATHER]
    )
    [call] = [block for block in first.content if block.type == "tool_use"]
    messages = [
        *follow_up(QUESTION, first, "unused")[:2],
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": [{"type": "text", "text": "rain"}],
                },
                {"type": "text", "text": "and tell me more"},
            ],
        },
    ]
    sdk.messages.create(model="claude", max_tokens=200, messages=messages, tools=[WEATHER])
    sent = engines.anthropic.requests[-1]["messages"][-1]["content"]
    assert sent == [
        {"type": "tool_result", "tool_use_id": call.id, "content": "rain"},
        {"type": "text", "text": "and tell me more"},
    ]


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_streamed_blocks_open_and_close_in_turn(engines: EnginesGateway, model: str) -> None:
    stream = client(engines).messages.create(
        model=model,
        max_tokens=200,
        messages=ask("weather and time in Kyiv [[call-all]] [[preface]]"),
        tools=[WEATHER, TIME],
        stream=True,
    )
    events = [(e.type, getattr(e, "index", None)) for e in stream]
    blocks = [(kind, index) for kind, index in events if kind.startswith("content_block")]
    count = 3 if model == "claude" else 2  # the Anthropic double thinks aloud first
    assert [i for kind, i in blocks if kind == "content_block_start"] == list(range(count))
    # Each block: its start, its deltas, its stop, before the next block starts.
    for index in range(count):
        own = [kind for kind, i in blocks if i == index]
        assert own[0] == "content_block_start" and own[-1] == "content_block_stop"
        assert set(own[1:-1]) == {"content_block_delta"}
        first = blocks.index(("content_block_start", index))
        assert blocks[first : first + len(own)] == [(kind, index) for kind in own]
    assert events[-2:] == [("message_delta", None), ("message_stop", None)]
