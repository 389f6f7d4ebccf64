"""The OpenAI-compatible engine beyond text, against the double of the chat-completions API over
real HTTP: every parameter reaches the engine as sent, tool calls come back whole from their
streamed pieces, images and audio pass through, logprobs and `n` choices come back, a tool's
result reaches the engine; a plain text request's body is what it always was."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from chatgate.providers.base import ChatTurn, Chunk, CompletionRequest, ProviderError
from chatgate.providers.messages import AudioPart, ImagePart, TextPart, Tool, ToolCall
from chatgate.providers.openai import OpenAIProvider
from tests.conftest import Double, double_provider
from tests.doubles.server import serve_app

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
WEATHER = Tool(
    name="get_weather",
    description="The weather in a city",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "alerts": {"type": "boolean"},
            "where": {
                "type": "object",
                "properties": {"country": {"type": "string"}},
                "required": ["country"],
            },
        },
        "required": ["city", "unit", "days", "alerts", "where"],
    },
    strict=True,
)
TIME = Tool(name="get_time", parameters={"type": "object", "properties": {}, "required": []})
WAV = b"RIFF\x44\x00\x00\x00WAVEfmt " + bytes(16) + b"data\x20\x00\x00\x00" + bytes(32)


@pytest.fixture
async def streaming(openai_double: Double) -> AsyncIterator[OpenAIProvider]:
    async for engine in _engine(openai_double, stream=True):
        yield engine


@pytest.fixture
async def whole(openai_double: Double) -> AsyncIterator[OpenAIProvider]:
    async for engine in _engine(openai_double, stream=False):
        yield engine


async def _engine(double: Double, *, stream: bool) -> AsyncIterator[OpenAIProvider]:
    os.environ["DOUBLE_API_KEY"] = "sk-double"
    engine = OpenAIProvider(double_provider(double.url).model_copy(update={"stream": stream}))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


def ask(*messages: ChatTurn | str, **fields: Any) -> CompletionRequest:
    turns = [m if isinstance(m, ChatTurn) else ChatTurn("user", m) for m in messages]
    values: dict[str, Any] = {"model": "gpt-double", "max_tokens": 50, **fields}
    return CompletionRequest(messages=[ChatTurn("system", "Be brief."), *turns], **values)


@dataclass
class Choice:
    text: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class Answer:
    chunks: list[Chunk]
    choices: dict[int, Choice]
    sent: dict[str, Any]  # the body the double received

    @property
    def only(self) -> Choice:
        assert list(self.choices) == [0], self.choices
        return self.choices[0]


async def answer(engine: OpenAIProvider, request: CompletionRequest, double: Double) -> Answer:
    """The engine's chunks put back together per choice, as a dialect gathers them."""
    before = len(double.api.requests)
    chunks = [chunk async for chunk in engine.stream(request)]
    assert len(double.api.requests) == before + 1
    choices: dict[int, Choice] = {}
    for chunk in chunks:
        choice = choices.setdefault(chunk.choice, Choice())
        choice.text += chunk.text
        for delta in chunk.tool_calls or ():
            call = choice.calls.setdefault(delta.index, {"id": None, "name": None, "args": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["args"] += delta.arguments
        choice.logprobs += chunk.logprobs or []
        choice.finish_reason = chunk.finish_reason or choice.finish_reason
    return Answer(chunks, choices, double.api.requests[-1])


async def test_a_plain_text_request_s_body_is_what_it_always_was(
    streaming: OpenAIProvider, whole: OpenAIProvider, openai_double: Double
) -> None:
    request = ask("hello", temperature=0.3, user="someone")
    for engine, streams in ((streaming, True), (whole, False)):
        got = await answer(engine, request, openai_double)
        expected = {"model", "messages", "max_tokens", "stream", "temperature", "user"}
        assert set(got.sent) == expected | ({"stream_options"} if streams else set())
        assert got.sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ]
        assert got.only.text == "echo: hello" and got.only.finish_reason == "stop"
        assert all(c.tool_calls is None and c.logprobs is None for c in got.chunks)


async def test_every_parameter_reaches_the_engine_as_sent(
    streaming: OpenAIProvider, openai_double: Double
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    request = ask(
        "what now",
        tools=(WEATHER, TIME),
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        response_format=response_format,
        stop=("END", "STOP"),
        seed=7,
        top_p=0.5,
        presence_penalty=0.25,
        frequency_penalty=-0.5,
        logprobs=True,
        top_logprobs=3,
        n=2,
    )
    sent = (await answer(streaming, request, openai_double)).sent
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER.parameters,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": TIME.parameters}},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["response_format"] == response_format
    assert sent["stop"] == ["END", "STOP"]
    assert (sent["seed"], sent["top_p"], sent["n"]) == (7, 0.5, 2)
    assert (sent["presence_penalty"], sent["frequency_penalty"]) == (0.25, -0.5)
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 3)


@pytest.mark.parametrize("stream", [True, False])
async def test_a_tool_call_comes_back_whole_from_its_pieces(
    stream: bool, streaming: OpenAIProvider, whole: OpenAIProvider, openai_double: Double
) -> None:
    got = await answer(
        streaming if stream else whole, ask("weather in Paris", tools=(WEATHER,)), openai_double
    )
    call = got.only.calls[0]
    assert list(got.only.calls) == [0] and got.only.text == ""
    assert call["name"] == "get_weather" and call["id"].startswith("call_")
    assert json.loads(call["args"]) == {
        "city": "weather",
        "unit": "celsius",
        "days": 1,
        "alerts": True,
        "where": {"country": "in"},
    }
    assert got.only.finish_reason == "tool_calls"
    pieces = [d for c in got.chunks for d in c.tool_calls or ()]
    if stream:  # the name once, then the arguments a few characters at a time
        assert pieces[0].id == call["id"] and pieces[0].arguments == ""
        assert all(p.id is None and p.name is None for p in pieces[1:])
        assert len(pieces) > 5 and all(len(p.arguments) <= 5 for p in pieces)
    else:
        assert len(pieces) == 1 and pieces[0].arguments == call["args"]


@pytest.mark.parametrize("stream", [True, False])
async def test_parallel_tool_calls_come_back_apart(
    stream: bool, streaming: OpenAIProvider, whole: OpenAIProvider, openai_double: Double
) -> None:
    engine = streaming if stream else whole
    got = await answer(engine, ask("[[call-all]] Oslo", tools=(WEATHER, TIME)), openai_double)
    calls = got.only.calls
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert calls[0]["id"] != calls[1]["id"]
    assert json.loads(calls[0]["args"])["city"] == "Oslo"
    assert json.loads(calls[1]["args"]) == {}
    assert got.only.finish_reason == "tool_calls"
    one = ask("[[call-all]] Oslo", tools=(WEATHER, TIME), parallel_tool_calls=False)
    assert list((await answer(engine, one, openai_double)).only.calls) == [0]


async def test_the_tool_called_is_the_one_chosen(
    whole: OpenAIProvider, openai_double: Double
) -> None:
    tools = (WEATHER, TIME)
    named = await answer(whole, ask("[[call get_time]] in Rome", tools=tools), openai_double)
    assert named.only.calls[0]["name"] == "get_time"
    assert json.loads(named.only.calls[0]["args"]) == {}
    forced = {"type": "function", "function": {"name": "get_time"}}
    got = await answer(whole, ask("Rome", tools=tools, tool_choice=forced), openai_double)
    assert got.only.calls[0]["name"] == "get_time"
    got = await answer(whole, ask("just talk", tools=tools, tool_choice="none"), openai_double)
    assert got.only.calls == {} and got.only.text == "echo: just talk"
    assert got.only.finish_reason == "stop"


async def test_a_tool_s_result_reaches_the_engine_with_its_call_id(
    streaming: OpenAIProvider, openai_double: Double
) -> None:
    call = ToolCall(id="call_abc123", name="get_weather", arguments='{"city":"Oslo"}')
    request = ask(
        "weather in Oslo?",
        ChatTurn("assistant", "", tool_calls=(call,)),
        ChatTurn("tool", "minus 3 and snow", tool_call_id="call_abc123"),
        tools=(WEATHER,),
    )
    got = await answer(streaming, request, openai_double)
    assert got.sent["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": "minus 3 and snow", "tool_call_id": "call_abc123"},
    ]
    assert got.only.text == "echo: minus 3 and snow" and got.only.finish_reason == "stop"

    stray = ask("hi", ChatTurn("tool", "orphan result", tool_call_id="call_nobody"))
    with pytest.raises(ProviderError) as refused:
        await answer(streaming, stray, openai_double)
    assert refused.value.code == "upstream_rejected"
    assert "must be a response to a preceeding message" in refused.value.message


async def test_images_and_audio_pass_through(whole: OpenAIProvider, openai_double: Double) -> None:
    png_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    audio = base64.b64encode(WAV).decode()
    parts = (
        TextPart("what are these?"),
        ImagePart(png_url, detail="low"),
        ImagePart("https://example.com/cat.jpg"),
        AudioPart(audio, "wav"),
    )
    turn = ChatTurn("user", "what are these?", parts=parts)
    got = await answer(whole, ask(turn), openai_double)
    assert got.sent["messages"][1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what are these?"},
            {"type": "image_url", "image_url": {"url": png_url, "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
        ],
    }
    assert got.only.text == (
        f"echo: what are these? [image image/png {len(PNG)} bytes] "
        f"[image https://example.com/cat.jpg] [audio wav {len(WAV)} bytes]"
    )
    text_only = b"not an image at all"
    bad = ImagePart("data:image/png;base64," + base64.b64encode(text_only).decode())
    with pytest.raises(ProviderError, match="unsupported image"):
        await answer(whole, ask(ChatTurn("user", "and this?", parts=(bad,))), openai_double)


@pytest.mark.parametrize("stream", [True, False])
async def test_logprobs_come_back_for_each_piece(
    stream: bool, streaming: OpenAIProvider, whole: OpenAIProvider, openai_double: Double
) -> None:
    request = ask("two words", logprobs=True, top_logprobs=2)
    got = await answer(streaming if stream else whole, request, openai_double)
    entries = got.only.logprobs
    assert "".join(e["token"] for e in entries) == got.only.text == "echo: two words"
    for entry in entries:
        assert entry["bytes"] == list(entry["token"].encode()) and entry["logprob"] < 0
        tops = entry["top_logprobs"]
        assert len(tops) == 2 and tops[0]["token"] == entry["token"]


@pytest.mark.parametrize("stream", [True, False])
async def test_n_choices_come_back_apart(
    stream: bool, streaming: OpenAIProvider, whole: OpenAIProvider, openai_double: Double
) -> None:
    got = await answer(streaming if stream else whole, ask("hi there", n=3), openai_double)
    assert {i: c.text for i, c in got.choices.items()} == {
        0: "echo: hi there",
        1: "(1) echo: hi there",
        2: "(2) echo: hi there",
    }
    assert all(c.finish_reason == "stop" for c in got.choices.values())
    assert [c.usage is not None for c in got.chunks].count(True) == 1


async def test_structured_output_and_stop_sequences(
    streaming: OpenAIProvider, openai_double: Double
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "tags"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "card", "schema": schema}}
    got = await answer(
        streaming, ask("Ada Lovelace", response_format=response_format), openai_double
    )
    assert json.loads(got.only.text) == {"name": "Ada", "tags": ["Lovelace"]}
    as_object = {"type": "json_object"}
    got = await answer(streaming, ask("in json", response_format=as_object), openai_double)
    assert json.loads(got.only.text) == {"echo": "echo: in json"}
    got = await answer(streaming, ask("one two STOP three", stop=("STOP",)), openai_double)
    assert got.only.text == "echo: one two " and got.only.finish_reason == "stop"


@pytest.fixture
def several_choices_an_event() -> Iterator[str]:
    """An OpenAI-compatible server that sends both choices of each step in one event."""

    def event(data: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    def step(deltas: list[dict[str, Any]], finish: str | None = None) -> bytes:
        choices = [
            {"index": i, "delta": d, "logprobs": None, "finish_reason": finish}
            for i, d in enumerate(deltas)
        ]
        return event({"object": "chat.completion.chunk", "model": "m", "choices": choices})

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(step([{"role": "assistant", "content": ""}] * 2))
        await response.write(step([{"content": "left "}, {"content": "right "}]))
        await response.write(step([{"content": "one"}, {"content": "two"}]))
        await response.write(step([{}, {}], "stop"))
        usage = {"prompt_tokens": 3, "completion_tokens": 4}
        await response.write(event({"model": "m", "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    with serve_app(app) as url:
        yield url


async def test_an_event_holding_several_choices_loses_none(several_choices_an_event: str) -> None:
    config = double_provider(several_choices_an_event).model_copy(update={"api_key_env": None})
    engine = OpenAIProvider(config)
    await engine.start()
    try:
        chunks = [chunk async for chunk in engine.stream(ask("both", n=2))]
    finally:
        await engine.close()
    texts = {0: "", 1: ""}
    for chunk in chunks:
        texts[chunk.choice] += chunk.text
    assert texts == {0: "left one", 1: "right two"}
    assert sorted(c.choice for c in chunks if c.finish_reason == "stop") == [0, 1]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
