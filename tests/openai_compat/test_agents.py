"""An agent written for OpenAI's API, pointed at chatgate: the official `openai` SDK and
LangChain's `ChatOpenAI` run their tool loops unchanged against an OpenAI-compatible engine and
an Anthropic engine; structured output comes from the bundled model; what an engine cannot
honour is refused by name."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.conftest import make_token
from tests.engines_gateway import EnginesGateway, engines_gateway

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "hours24": {"type": "boolean"}},
            "required": ["city", "hours24"],
        },
    },
}
TOOL_ENGINES = ["gpt", "gpt-whole", "claude", "claude-whole"]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnginesGateway]:
    with engines_gateway(tmp_path_factory.mktemp("agents") / "chatgate.db") as gateway:
        yield gateway


def client(engines: EnginesGateway, user: str = "agent") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{engines.url}/v1", api_key=make_token(user), max_retries=0)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def follow_up(question: str, message: Any, result: str) -> list[dict[str, Any]]:
    """The conversation after the model's tool calls: each answered with `result`."""
    return [
        *ask(question),
        message.model_dump(exclude_none=True),
        *(
            {"role": "tool", "tool_call_id": call.id, "content": result}
            for call in message.tool_calls
        ),
    ]


@pytest.mark.parametrize("model", TOOL_ENGINES)
def test_a_tool_loop_runs_unchanged(engines: EnginesGateway, model: str) -> None:
    sdk = client(engines)
    question = "what is the weather in Paris"
    first = sdk.chat.completions.create(model=model, messages=ask(question), tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}
    answer = sdk.chat.completions.create(
        model=model, messages=follow_up(question, choice.message, "sunny, 21 C"), tools=[WEATHER]
    )
    assert answer.choices[0].finish_reason == "stop"
    assert "sunny, 21 C" in (answer.choices[0].message.content or "")


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_streamed_tool_calls_are_reassembled_by_the_sdk(
    engines: EnginesGateway, model: str
) -> None:
    sdk = client(engines)
    with sdk.chat.completions.stream(
        model=model, messages=ask("weather and time in Oslo [[call-all]]"), tools=[WEATHER, TIME]
    ) as stream:
        deltas = [event for event in stream if event.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    assert json.loads(calls[1].function.arguments)["hours24"] is True
    assert len(deltas) > 2  # the arguments came in pieces, not whole
    assert final.choices[0].finish_reason == "tool_calls"


def test_tools_reach_the_openai_engine_as_sent(engines: EnginesGateway) -> None:
    sdk = client(engines)
    sdk.chat.completions.create(
        model="gpt",
        messages=ask("the time please"),
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    sent = engines.openai.requests[-1]
    assert sent["tools"] == [WEATHER, TIME]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["messages"][0] == {"role": "system", "content": "You are gpt."}


def test_tools_become_anthropic_tools(engines: EnginesGateway) -> None:
    client(engines).chat.completions.create(
        model="claude", messages=ask("the weather"), tools=[WEATHER], tool_choice="required"
    )
    sent = engines.anthropic.requests[-1]
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert sent["tool_choice"]["type"] == "any"
    assert sent["system"] == "You are claude."


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_an_image_reaches_the_engine(engines: EnginesGateway, model: str) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    reply = client(engines).chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in it"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )
    assert f"image/png {len(PNG)} bytes" in (reply.choices[0].message.content or "")


class Person(BaseModel):
    name: str
    age: int


def test_structured_output_from_the_bundled_model(engines: EnginesGateway) -> None:
    reply = client(engines).chat.completions.parse(
        model="helper",
        messages=ask("Make up a person: a name and an age."),
        response_format=Person,
    )
    person = reply.choices[0].message.parsed
    assert isinstance(person, Person)
    assert person.name.strip()


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("helper", {"tools": [WEATHER]}, "tools"),
        ("dify", {"tools": [WEATHER]}, "tools"),
        ("claude", {"logprobs": True}, "logprobs"),
        ("claude", {"response_format": {"type": "json_object"}}, "response_format.json_object"),
        ("helper", {"n": 2}, "n"),
        ("gpt", {"logit_bias": {"50256": -100}}, "logit_bias"),
    ],
)
def test_what_an_engine_cannot_honour_is_refused_by_name(
    engines: EnginesGateway, model: str, params: dict[str, Any], param: str
) -> None:
    before = len(engines.openai.requests) + len(engines.anthropic.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client(engines).chat.completions.create(model=model, messages=ask("hello"), **params)
    error = info.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("unsupported_parameter", param)
    assert param in error["message"]
    assert len(engines.openai.requests) + len(engines.anthropic.requests) == before


def test_an_image_to_the_bundled_model_is_refused(engines: EnginesGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(engines).chat.completions.create(
            model="helper",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                    ],
                }
            ],
        )
    assert info.value.code == "unsupported_parameter"


def test_a_fallback_that_cannot_honour_the_tools_is_skipped(engines: EnginesGateway) -> None:
    sdk = client(engines)
    # Without tools, the bundled fallback answers for the failing engine...
    plain = sdk.chat.completions.create(model="gpt-then-local", messages=ask("hi [[status 503]]"))
    assert plain.model_extra and plain.model_extra["chatgate_provider"] == "local"
    # ...with tools it is not asked to pretend: the engine's failure is the answer.
    with pytest.raises(openai.InternalServerError) as info:
        sdk.chat.completions.create(
            model="gpt-then-local", messages=ask("hi [[status 503]]"), tools=[WEATHER]
        )
    assert info.value.status_code in (502, 503)


def test_sampling_parameters_pass_through(engines: EnginesGateway) -> None:
    reply = client(engines).chat.completions.create(
        model="gpt",
        messages=ask("one two three four"),
        stop=["three"],
        seed=7,
        top_p=0.5,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        logprobs=True,
        top_logprobs=2,
        n=2,
    )
    sent = engines.openai.requests[-1]
    assert (sent["stop"], sent["seed"], sent["top_p"]) == (["three"], 7, 0.5)
    assert (sent["presence_penalty"], sent["frequency_penalty"]) == (0.1, 0.2)
    assert (sent["logprobs"], sent["top_logprobs"], sent["n"]) == (True, 2, 2)
    assert [c.index for c in reply.choices] == [0, 1]
    for choice in reply.choices:
        assert "three" not in (choice.message.content or "")
        assert choice.logprobs is not None and choice.logprobs.content


@tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return f"rain in {city}"


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_langchain_runs_a_two_step_tool_loop(engines: EnginesGateway, model: str) -> None:
    llm = ChatOpenAI(
        model=model,
        base_url=f"{engines.url}/v1",
        api_key=make_token("langchain"),  # type: ignore[arg-type]
        max_retries=0,
        streaming=model == "claude",
    ).bind_tools([get_weather])
    messages: list[Any] = [HumanMessage("what is the weather in Lyon")]
    first = llm.invoke(messages)
    assert [call["name"] for call in first.tool_calls] == ["get_weather"]
    messages.append(first)
    for call in first.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = llm.invoke(messages)
    assert not final.tool_calls
    assert "rain in" in str(final.content)


def test_a_clients_top_p_gets_no_temperature_added(engines: EnginesGateway) -> None:
    """The assistant's temperature goes with a request that sets neither, not with a client's
    top_p (Anthropic's newer models refuse both at once)."""
    sdk = client(engines)
    sdk.chat.completions.create(model="claude", messages=ask("hi"), top_p=0.5)
    sent = engines.anthropic.requests[-1]
    assert sent["top_p"] == 0.5 and "temperature" not in sent
    sdk.chat.completions.create(model="claude", messages=ask("hi"))
    assert "temperature" in engines.anthropic.requests[-1]
