"""The Anthropic engine with images (base64 and URL sources), stop sequences and top_p, against
the double over real HTTP, streamed and whole; and the double's own events, as the engine reads
them."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from chatgate.core.errors import AppError
from chatgate.providers.anthropic import AnthropicProvider
from chatgate.providers.base import ChatTurn, ProviderError
from chatgate.providers.messages import ImagePart, TextPart
from tests.providers.anthropic_engine import (
    API_KEY,
    KEY_ENV,
    PNG,
    PNG_URL,
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


async def test_images_are_sent_as_blocks_in_order(
    engine: AnthropicProvider, served: Served
) -> None:
    parts = (
        TextPart("What is in"),
        ImagePart(PNG_URL),
        TextPart("and in"),
        ImagePart("https://example.com/cat.jpg", detail="low"),
    )
    answer = await ask(engine, ChatTurn(role="user", content="What is in and in", parts=parts))
    assert served.api.requests[-1]["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG_URL.split(",")[1]}},
                {"type": "text", "text": "and in"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]  # fmt: skip
    assert answer.text == (
        f"echo: What is in [image image/png {len(PNG)} bytes] and in "
        "[image https://example.com/cat.jpg]"
    )


async def test_a_user_turn_with_an_image_merges_with_one_of_text(
    engine: AnthropicProvider, served: Served
) -> None:
    picture = ChatTurn(role="user", content="", parts=(ImagePart(PNG_URL),))
    await ask(engine, user("look"), picture)
    assert [b["type"] for b in served.api.requests[-1]["messages"][0]["content"]] == [
        "text",
        "image",
    ]


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("data:image/bmp;base64," + base64.b64encode(PNG).decode(), "media_type"),
        ("data:image/png;base64,@@not-base64@@", "not valid base64"),
    ],
)
async def test_an_image_the_api_refuses_is_upstream_rejected(
    engine: AnthropicProvider, url: str, complaint: str
) -> None:
    turn = ChatTurn(role="user", content="see", parts=(TextPart("see"), ImagePart(url)))
    with pytest.raises(ProviderError) as refused:
        await ask(engine, turn)
    assert refused.value.code == "upstream_rejected" and complaint in refused.value.message


async def test_a_data_url_not_in_base64_is_refused_before_sending(
    engine: AnthropicProvider, served: Served
) -> None:
    before = len(served.api.requests)
    turn = ChatTurn(role="user", content="", parts=(ImagePart("data:image/png,rawbytes"),))
    with pytest.raises(AppError) as refused:
        await ask(engine, turn)
    assert refused.value.status == 400 and len(served.api.requests) == before


async def test_stop_sequences_and_top_p(engine: AnthropicProvider, served: Served) -> None:
    answer = await ask(engine, user("hello big world again"), stop=("again", "world"), top_p=0.25)
    body = served.api.requests[-1]
    assert body["stop_sequences"] == ["again", "world"] and body["top_p"] == 0.25
    # Cut where the first of them appears in the answer; Anthropic's stop_sequence is "stop".
    assert (answer.text, answer.finish_reason) == ("echo: hello big ", "stop")


@pytest.mark.parametrize("stream", [True, False])
async def test_the_double_speaks_the_messages_api(served: Served, stream: bool) -> None:
    """What the engine reads, as the double sends it: tool_use blocks streamed as Anthropic does,
    the stop sequence named."""
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    tools = [{"name": "get_time", "input_schema": {"type": "object"}}]
    body = {"model": "m", "max_tokens": 50, "stream": stream, "tools": tools}
    async with httpx.AsyncClient(base_url=served.url, headers=headers) as http:
        called = await http.post(
            "/v1/messages", json={**body, "messages": [{"role": "user", "content": "time?"}]}
        )
        stopped = await http.post(
            "/v1/messages",
            json={
                **body,
                "tool_choice": {"type": "none"},
                "stop_sequences": ["b"],
                "messages": [{"role": "user", "content": "a b c"}],
            },
        )
    if not stream:
        assert called.json()["content"][0]["input"] == {}
        assert called.json()["stop_reason"] == "tool_use"
        assert stopped.json()["content"] == [{"type": "text", "text": "echo: a "}]
        assert (stopped.json()["stop_reason"], stopped.json()["stop_sequence"]) == (
            "stop_sequence",
            "b",
        )
        return
    events = [json.loads(line[5:]) for line in called.text.splitlines() if line.startswith("data:")]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[1]["content_block"]["type"] == "tool_use"
    assert events[1]["content_block"]["input"] == {}
    pieces = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"]
    # No parameters: nothing but the empty first piece (the engine makes it "{}" for OpenAI).
    assert pieces == [""] and events[-2]["delta"]["stop_reason"] == "tool_use"
    assert '"stop_sequence": "b"' in stopped.text
