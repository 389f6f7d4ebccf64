"""The official `openai` package talks to chatgate as if it were OpenAI."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Gateway, make_token


def sdk(gateway: Gateway, user: str = "sdk-user", **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=make_token(user), max_retries=0, **kwargs
    )  # type: ignore[arg-type]


def async_sdk(gateway: Gateway, user: str = "sdk-user") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=make_token(user), max_retries=0)


def test_sync_completion_uses_the_assistant_prompt(gateway: Gateway) -> None:
    client = sdk(gateway)
    reply = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "where is my parcel"}]
    )
    assert reply.choices[0].message.content == "echo: where is my parcel"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "support"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    sent = gateway.double.api.requests[-1]
    assert sent["model"] == "double-support"
    assert sent["messages"][0] == {"role": "system", "content": "You are support."}
    assert sent["stream"] is False


def test_sync_stream_yields_deltas_then_usage(gateway: Gateway) -> None:
    client = sdk(gateway)
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "a b c d"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: a b c d"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 4
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_async_client_streams_and_completes(gateway: Gateway) -> None:
    client = async_sdk(gateway)
    reply = await client.chat.completions.create(
        model="echo",
        messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}],
    )
    assert reply.choices[0].message.content == "echo: hi"
    stream = await client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "x y"}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == "echo: x y"
    await client.close()


def test_models_lists_assistants(gateway: Gateway) -> None:
    ids = {m.id for m in sdk(gateway).models.list()}
    assert {"echo", "support", "helper"} <= ids
    assert sdk(gateway).models.retrieve("echo").id == "echo"


def test_bad_key_is_authentication_error(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    assert info.value.code == "invalid_token"


def test_unknown_model_is_not_found(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk(gateway).chat.completions.create(
            model="no-such-assistant", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "model_not_found"


def test_engine_rate_limit_is_rate_limit_error(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gateway).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "[[status 429]]"}]
        )
    assert info.value.response.headers["retry-after"] == "2"


def test_engine_failure_is_a_server_error(gateway: Gateway) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        sdk(gateway).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "[[status 500]]"}], stream=True
        )
    assert info.value.status_code == 502


def test_bad_request_and_context_limit_are_bad_request_errors(gateway: Gateway) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="echo", messages=[])
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "word " * 400}]
        )
    assert info.value.code == "context_length_exceeded"


def test_old_messages_are_dropped_to_fit_the_budget(gateway: Gateway) -> None:
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "w " * 30}
        for i in range(12)
    ]
    sdk(gateway).chat.completions.create(
        model="tiny", messages=[*history, {"role": "user", "content": "last"}]
    )
    sent = gateway.double.api.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and sent[-1]["content"] == "last"
    assert 1 < len(sent) < 14
    assert [m["content"] for m in sent[1:-1]] == [m["content"] for m in history[-(len(sent) - 2) :]]
