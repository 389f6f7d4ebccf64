"""The Anthropic engine with tools: OpenAI's tools, tool_choice, calls and results translated
into the Messages API's tool_use and tool_result blocks, and the model's tool_use blocks read back
as OpenAI's tool calls, against the double over real HTTP, streamed and whole."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chatgate.core.errors import AppError
from chatgate.providers.anthropic import AnthropicProvider
from chatgate.providers.base import ChatTurn, ProviderError
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.http import opaque_user
from chatgate.providers.messages import TextPart, ToolCall
from tests.providers.anthropic_engine import (
    API_KEY,
    KEY_ENV,
    TOOLS,
    WEATHER,
    WEATHER_SCHEMA,
    Served,
    ask,
    open_engine,
    serve_double,
    user,
)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_double() as served:
        yield served


@pytest.fixture(params=[True, False], ids=["streamed", "whole"])
async def engine(
    request: pytest.FixtureRequest, served: Served, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AnthropicProvider]:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    async with open_engine(served.url, stream=request.param) as provider:
        yield provider


async def test_a_plain_text_request_is_sent_as_before(
    engine: AnthropicProvider, served: Served
) -> None:
    turns = [
        ChatTurn(role="system", content="Be brief."),
        user("first"),
        ChatTurn(role="assistant", content="an answer"),
        ChatTurn(role="user", content="second", parts=(TextPart("second"),)),
    ]
    answer = await ask(engine, *turns, temperature=0.5, user="u-1")
    assert served.api.requests[-1] == {
        "model": "claude-double",
        "max_tokens": 200,
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "second"},
        ],
        "stream": engine.config.stream,
        "system": "Be brief.",
        "temperature": 0.5,
        "metadata": {"user_id": opaque_user("u-1")},
    }
    assert (answer.text, answer.finish_reason, answer.deltas) == ("echo: second", "stop", [])


FUNCTION = {"type": "function", "function": {"name": "get_time"}}


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "sent"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (FUNCTION, None, {"type": "tool", "name": "get_time"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (FUNCTION, False, {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),  # the API takes no such flag with none
        ("auto", True, {"type": "auto"}),
    ],
)
async def test_tools_and_tool_choice_are_translated(
    engine: AnthropicProvider,
    served: Served,
    tool_choice: Any,
    parallel: bool | None,
    sent: dict[str, Any] | None,
) -> None:
    answer = await ask(
        engine,
        user("weather in Paris"),
        tools=TOOLS,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
    )
    body = served.api.requests[-1]
    weather = {"name": "get_weather", "description": WEATHER.description}
    assert body["tools"] == [
        {**weather, "input_schema": WEATHER_SCHEMA},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body.get("tool_choice") == sent
    if tool_choice == "none":
        assert (answer.text, answer.finish_reason, answer.calls) == (
            "echo: weather in Paris",
            "stop",
            [],
        )
    else:
        forced = "get_time" if tool_choice == FUNCTION else "get_weather"
        assert [call.name for call in answer.calls] == [forced]
        assert answer.finish_reason == "tool_calls" and answer.text == ""


async def test_a_tool_choice_without_counterpart_is_refused_by_name(
    engine: AnthropicProvider, served: Served
) -> None:
    before = len(served.api.requests)
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    with pytest.raises(UnsupportedParameter) as refused:
        await ask(engine, user("hi"), tools=TOOLS, tool_choice=choice)
    assert refused.value.param == "tool_choice" and refused.value.status == 400
    assert len(served.api.requests) == before


async def test_a_call_is_read_back_with_its_whole_arguments(engine: AnthropicProvider) -> None:
    answer = await ask(engine, user("What is the weather in Paris"), tools=TOOLS)
    [call] = answer.calls
    assert call.name == "get_weather" and call.id.startswith("toolu_")
    assert json.loads(call.arguments) == {
        "city": "Paris",
        "unit": "celsius",
        "days": 1,
        "alerts": True,
        "where": {"lat": 1, "country": "in"},
    }
    assert answer.finish_reason == "tool_calls"
    if engine.config.stream:
        # Named first with no arguments, then the input_json_delta pieces as they come.
        assert answer.deltas[0].arguments == "" and len(answer.deltas) > 3
        assert all(d.arguments for d in answer.deltas[1:])
    else:
        assert len(answer.deltas) == 1


async def test_parallel_calls_are_numbered_among_themselves(engine: AnthropicProvider) -> None:
    # The text block is Anthropic's block 0: the calls are its blocks 1 and 2, OpenAI's 0 and 1.
    answer = await ask(engine, user("[[call-all]] [[preface]] weather in Rome"), tools=TOOLS)
    assert answer.text == "Let me call get_weather and get_time."
    weather, clock = answer.calls
    assert (weather.name, clock.name) == ("get_weather", "get_time")
    assert json.loads(weather.arguments)["city"] == "Rome"
    assert clock.arguments == "{}" and weather.id != clock.id
    assert answer.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("text", "fields", "called"),
    [
        ("[[call get_time]] now", {}, ["get_time"]),
        ("[[call-all]] both", {"parallel_tool_calls": False}, ["get_weather"]),
        ("[[call-all]] both", {"tool_choice": FUNCTION}, ["get_time"]),
    ],
)
async def test_the_double_calls_the_tools_asked_for(
    engine: AnthropicProvider, text: str, fields: dict[str, Any], called: list[str]
) -> None:
    answer = await ask(engine, user(text), tools=TOOLS, **fields)
    assert [call.name for call in answer.calls] == called


async def test_an_agent_loop_runs_to_an_answer(engine: AnthropicProvider, served: Served) -> None:
    question = user("[[call-all]] weather in Oslo and the time")
    first = await ask(engine, question, tools=TOOLS)
    weather, clock = first.calls
    turns = [
        question,
        ChatTurn(role="assistant", content="", tool_calls=(weather, clock)),
        ChatTurn(role="tool", content="sunny", tool_call_id=weather.id),
        ChatTurn(role="tool", content="noon", tool_call_id=clock.id),
        user("thanks"),
    ]
    final = await ask(engine, *turns, tools=TOOLS)
    assert served.api.requests[-1]["messages"] == [
        {"role": "user", "content": "[[call-all]] weather in Oslo and the time"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": weather.id, "name": "get_weather",
                 "input": json.loads(weather.arguments)},
                {"type": "tool_use", "id": clock.id, "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": weather.id, "content": "sunny"},
                {"type": "tool_result", "tool_use_id": clock.id, "content": "noon"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]  # fmt: skip
    assert (final.text, final.finish_reason, final.calls) == ("echo: sunny noon thanks", "stop", [])


async def test_an_assistant_turn_s_text_comes_before_its_calls(
    engine: AnthropicProvider, served: Served
) -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    turns = [
        user("weather?"),
        ChatTurn(role="assistant", content="Let me look.", tool_calls=(call,)),
        ChatTurn(role="tool", content="rain", tool_call_id="call_1"),
    ]
    answer = await ask(engine, *turns, tools=TOOLS)
    assert served.api.requests[-1]["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert answer.text == "echo: rain"


async def test_a_result_for_no_call_of_the_previous_turn_is_refused(
    engine: AnthropicProvider,
) -> None:
    turns = [
        user("weather?"),
        ChatTurn(role="assistant", content="", tool_calls=(ToolCall("call_1", "get_time", "{}"),)),
        ChatTurn(role="tool", content="noon", tool_call_id="call_1"),
        ChatTurn(role="tool", content="rain", tool_call_id="call_9"),
    ]
    with pytest.raises(ProviderError) as refused:
        await ask(engine, *turns, tools=TOOLS)
    assert refused.value.code == "upstream_rejected"
    assert "unexpected `tool_use_id` found in `tool_result` blocks: call_9" in refused.value.message


@pytest.mark.parametrize("arguments", ["[1, 2]", "not json", '"Paris"', "null"])
async def test_arguments_that_are_not_a_json_object_are_refused(
    engine: AnthropicProvider, served: Served, arguments: str
) -> None:
    before = len(served.api.requests)
    turns = [
        user("weather?"),
        ChatTurn(role="assistant", content="", tool_calls=(ToolCall("c1", "get_time", arguments),)),
        ChatTurn(role="tool", content="noon", tool_call_id="c1"),
    ]
    with pytest.raises(AppError) as refused:
        await ask(engine, *turns, tools=TOOLS)
    assert not isinstance(refused.value, ProviderError)
    assert (refused.value.status, refused.value.code) == (400, "invalid_tool_arguments")
    assert len(served.api.requests) == before  # refused before Anthropic is asked


async def test_a_call_cut_off_by_the_context_window_takes_its_result_along(
    engine: AnthropicProvider, served: Served
) -> None:
    turns = [
        ChatTurn(role="assistant", content="", tool_calls=(ToolCall("c0", "get_time", "{}"),)),
        ChatTurn(role="tool", content="noon", tool_call_id="c0"),
        user("and now?"),
    ]
    answer = await ask(engine, *turns, tools=TOOLS, tool_choice="none")
    assert served.api.requests[-1]["messages"] == [{"role": "user", "content": "and now?"}]
    assert answer.text == "echo: and now?"


async def test_tool_results_go_first_in_their_user_message(
    engine: AnthropicProvider, served: Served
) -> None:
    # A note typed before the tool answered: the API takes the results first, then text.
    turns = [
        user("time?"),
        ChatTurn(role="assistant", content="", tool_calls=(ToolCall("c1", "get_time", "{}"),)),
        user("quickly"),
        ChatTurn(role="tool", content="noon", tool_call_id="c1"),
    ]
    answer = await ask(engine, *turns, tools=TOOLS)
    assert served.api.requests[-1]["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "noon"},
        {"type": "text", "text": "quickly"},
    ]
    assert answer.text == "echo: noon quickly"
