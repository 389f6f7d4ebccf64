"""The official `anthropic` SDK talks to chatgate's `POST /v1/messages` as if it were Anthropic:
text answers with the assistant's prompt applied, the client's system, streaming with Anthropic's
event types, images, and the token count, on an OpenAI-compatible and an Anthropic engine."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.anthropic_compat.conftest import PNG, ask, client
from tests.conftest import make_token
from tests.engines_gateway import EnginesGateway


def test_text_answer_uses_the_assistant_prompt(engines: EnginesGateway) -> None:
    reply = client(engines).messages.create(
        model="gpt", max_tokens=100, messages=ask("where is my parcel")
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.id.startswith("msg_")
    assert reply.model == "gpt"
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].text == "echo: where is my parcel"
    assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    sent = engines.openai.requests[-1]
    assert sent["model"] == "openai-model"
    assert sent["messages"] == [
        {"role": "system", "content": "You are gpt."},
        {"role": "user", "content": "where is my parcel"},
    ]
    assert sent["max_tokens"] == 100 and sent["stream"] is False


def test_anthropic_engine_gets_the_prompt_and_the_client_system(engines: EnginesGateway) -> None:
    reply = client(engines).messages.create(
        model="claude",
        max_tokens=50,
        system=[{"type": "text", "text": "Answer in French."}],
        messages=ask("bonjour"),
        stop_sequences=["END"],
        metadata={"user_id": "end-user-7"},
        # The SDK no longer offers sampling parameters by name; older ones and other clients
        # still send them.
        extra_body={"temperature": 0.3, "top_p": 0.9},
    )
    assert reply.content[0].text == "echo: bonjour"
    sent = engines.anthropic.requests[-1]
    assert sent["system"] == "You are claude.\n\nAnswer in French."
    assert sent["messages"] == [{"role": "user", "content": "bonjour"}]
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9
    assert sent["stop_sequences"] == ["END"]
    assert sent["max_tokens"] == 50


def test_system_string_reaches_an_openai_engine_after_the_prompt(engines: EnginesGateway) -> None:
    client(engines).messages.create(
        model="gpt", max_tokens=20, system="Be terse.", messages=ask("hi there")
    )
    sent = engines.openai.requests[-1]["messages"]
    assert sent[:2] == [
        {"role": "system", "content": "You are gpt."},
        {"role": "system", "content": "Be terse."},
    ]


def test_a_conversation_is_passed_on_whole(engines: EnginesGateway) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "an answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    reply = client(engines).messages.create(model="gpt", max_tokens=20, messages=messages)
    assert reply.content[0].text == "echo: second"
    sent = engines.openai.requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "first"),
        ("assistant", "an answer"),
        ("user", "second"),
    ]


@pytest.mark.parametrize("model", ["gpt", "claude", "gpt-whole", "claude-whole"])
def test_stream_text_and_final_message(engines: EnginesGateway, model: str) -> None:
    with client(engines).messages.stream(
        model=model, max_tokens=100, messages=ask("a b c d")
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "echo: a b c d"
    if not model.endswith("-whole"):
        assert len(pieces) >= 4  # as the engine streamed it, not whole at the end
    assert final.content[0].text == "echo: a b c d"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert final.model == model


def test_stream_events_follow_anthropic_order(engines: EnginesGateway) -> None:
    stream = client(engines).messages.create(
        model="claude", max_tokens=100, messages=ask("one two"), stream=True
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert events[0].message.content == [] and events[0].message.stop_reason is None
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens > 0
    assert all(e.index == 0 for e in events if e.type.startswith("content_block"))


def test_length_cut_is_max_tokens(engines: EnginesGateway) -> None:
    reply = client(engines).messages.create(
        model="claude", max_tokens=2, messages=ask("many words in this answer")
    )
    assert reply.stop_reason == "max_tokens"
    assert reply.content[0].text == "echo: many "


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_an_image_block_reaches_the_engine(engines: EnginesGateway, model: str) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]
    reply = client(engines).messages.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": content}]
    )
    text = reply.content[0].text
    assert (
        "what is this" in text and f"[image image/png {len(base64.b64decode(PNG))} bytes]" in text
    )
    if model == "gpt":
        parts = engines.openai.requests[-1]["messages"][-1]["content"]
        assert parts[1] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}"},
        }
    else:
        blocks = engines.anthropic.requests[-1]["messages"][-1]["content"]
        assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}


def test_an_image_url_reaches_the_engine(engines: EnginesGateway) -> None:
    url = "https://images.example.com/cat.png"
    content = [{"type": "image", "source": {"type": "url", "url": url}}]
    reply = client(engines).messages.create(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": content}]
    )
    assert f"[image {url}]" in reply.content[0].text


def test_count_tokens_counts_the_prompt_the_engine_would_get(engines: EnginesGateway) -> None:
    sdk = client(engines)
    short = sdk.messages.count_tokens(model="gpt", messages=ask("hello"))
    long = sdk.messages.count_tokens(model="gpt", messages=ask("hello " * 200))
    assert 0 < short.input_tokens < long.input_tokens
    assert long.input_tokens - short.input_tokens >= 100


def test_auth_token_and_chatgate_api_keys_are_accepted(engines: EnginesGateway) -> None:
    import anthropic

    bearer = anthropic.Anthropic(
        base_url=engines.url, auth_token=make_token("bearer-user"), max_retries=0
    )
    reply = bearer.messages.create(model="gpt", max_tokens=20, messages=ask("by bearer"))
    assert reply.content[0].text == "echo: by bearer"
    admin = {"Authorization": f"Bearer {make_token('root', admin=True)}"}
    made = httpx.post(
        f"{engines.url}/v1/admin/keys",
        json={"name": "claude-code", "kind": "user", "user_id": "keyed-user"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    keyed = anthropic.Anthropic(base_url=engines.url, api_key=made.json()["secret"], max_retries=0)
    reply = keyed.messages.create(model="gpt", max_tokens=20, messages=ask("by key"))
    assert reply.content[0].text == "echo: by key"


def test_x_api_key_counts_on_anthropic_routes_only(engines: EnginesGateway) -> None:
    headers = {"x-api-key": make_token("header-user")}
    assert httpx.get(f"{engines.url}/v1/assistants", headers=headers).status_code == 401
    answer = httpx.post(
        f"{engines.url}/v1/messages",
        json={"model": "gpt", "max_tokens": 10, "messages": ask("x")},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["request-id"] == answer.headers["x-trace-id"]


def test_structured_output_reaches_an_openai_engine(engines: EnginesGateway) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    reply = client(engines).messages.create(
        model="gpt",
        max_tokens=100,
        messages=ask("plan a trip to Rome"),
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    answer = json.loads(reply.content[0].text)
    assert set(answer) == {"city", "days"} and isinstance(answer["days"], int)
    sent = engines.openai.requests[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema
