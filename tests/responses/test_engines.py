"""Stateful Responses over engines that have no such API: the bundled model (a short answer, a
continued conversation, structured output by `text.format`) and an Anthropic engine (a function
tool loop), through the official SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

from tests.engines_gateway import EnginesGateway, engines_gateway
from tests.responses.conftest import WEATHER, Client, open_client, session_of


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnginesGateway]:
    with engines_gateway(tmp_path_factory.mktemp("responses") / "chatgate.db") as gateway:
        yield gateway


@pytest.fixture
def carol(engines: EnginesGateway) -> Iterator[Client]:
    client = open_client(engines.url)
    yield client
    client.http.close()
    client.sdk.close()


def test_the_bundled_model_answers_and_continues(carol: Client) -> None:
    first = carol.sdk.responses.create(
        model="helper", input="Say hello in one word.", max_output_tokens=12
    )
    assert first.status in ("completed", "incomplete")
    assert first.output_text.strip()
    assert first.model_extra and first.model_extra["chatgate_provider"] == "local"
    second = carol.sdk.responses.create(
        model="helper",
        input="Again.",
        previous_response_id=first.id,
        max_output_tokens=12,
    )
    assert second.output_text.strip()
    history = carol.history(session_of(second))
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[1]["content"] == first.output_text


def test_structured_output_from_the_bundled_model(carol: Client) -> None:
    reply = carol.sdk.responses.parse(
        model="helper", input="Make up a person: a name and an age.", text_format=Person
    )
    person = reply.output_parsed
    assert isinstance(person, Person) and person.name.strip()
    assert reply.text is not None and reply.text.format is not None
    assert reply.text.format.type == "json_schema"


def test_tools_to_the_bundled_model_are_refused_by_name(carol: Client) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        carol.sdk.responses.create(model="helper", input="hi", tools=[WEATHER])
    assert info.value.code == "unsupported_parameter"
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "tools"


@pytest.mark.parametrize("model", ["claude", "claude-whole"])
def test_a_tool_loop_over_an_anthropic_engine(
    engines: EnginesGateway, carol: Client, model: str
) -> None:
    asked = carol.sdk.responses.create(model=model, input="weather in Kyiv?", tools=[WEATHER])
    call = next(item for item in asked.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    answered = carol.sdk.responses.create(
        model=model,
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "5 C"}],
        tools=[WEATHER],
    )
    assert "5 C" in answered.output_text
    sent = engines.anthropic.requests[-1]["messages"]
    assert sent[-1]["role"] == "user"
    assert sent[-1]["content"][0]["type"] == "tool_result"
    assert sent[-1]["content"][0]["tool_use_id"] == call.call_id


def test_an_answer_cut_at_max_output_tokens_is_incomplete(carol: Client) -> None:
    stream = carol.sdk.responses.create(
        model="helper", input="Count from one to fifty in words.", max_output_tokens=3, stream=True
    )
    events = list(stream)
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    stored = carol.sdk.responses.retrieve(last.response.id)
    assert stored.status == "incomplete" and stored.output_text == last.response.output_text
    assert stored.usage is not None and stored.usage.output_tokens == 3
