"""chatgate's errors on `POST /v1/messages` in Anthropic's shape, raised by the official SDK as
its own exception classes, with chatgate's code and trace id; failures mid-stream as `error`
events; what no engine behind an assistant can honour refused by name."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from tests.anthropic_compat.conftest import PNG, WEATHER, ask, client
from tests.conftest import make_token
from tests.engines_gateway import EnginesGateway


def error_of(exc: anthropic.APIStatusError) -> dict[str, Any]:
    """The error object, after checking Anthropic's envelope and the trace id in it."""
    body = exc.body
    assert isinstance(body, dict) and body["type"] == "error", body
    error: dict[str, Any] = body["error"]
    trace_id = exc.response.headers["x-trace-id"]
    assert error["trace_id"] == trace_id and exc.request_id == trace_id
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_a_bad_key_is_an_authentication_error(engines: EnginesGateway) -> None:
    sdk = anthropic.Anthropic(base_url=engines.url, api_key="not-a-token", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        sdk.messages.create(model="gpt", max_tokens=10, messages=ask("x"))
    error = error_of(info.value)
    assert error["type"] == "authentication_error" and error["code"] == "invalid_token"


def test_no_key_is_an_authentication_error(engines: EnginesGateway) -> None:
    answer = httpx.post(
        f"{engines.url}/v1/messages", json={"model": "gpt", "max_tokens": 10, "messages": ask("x")}
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"
    assert answer.json()["error"]["code"] == "missing_token"


def test_an_unknown_model_is_not_found(engines: EnginesGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(engines).messages.create(model="no-such-assistant", max_tokens=10, messages=ask("x"))
    error = error_of(info.value)
    assert error["type"] == "not_found_error" and error["code"] == "model_not_found"


@pytest.mark.parametrize("model", ["dify", "helper"])
def test_tools_on_an_engine_without_them_are_refused_by_name(
    engines: EnginesGateway, model: str
) -> None:
    before = len(engines.dify.requests)
    with pytest.raises(anthropic.BadRequestError) as info:
        client(engines).messages.create(
            model=model, max_tokens=10, messages=ask("weather?"), tools=[WEATHER]
        )
    error = error_of(info.value)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "unsupported_parameter" and error["param"] == "tools"
    assert len(engines.dify.requests) == before  # refused before the engine was called


def test_an_image_on_an_engine_without_images_is_refused(engines: EnginesGateway) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with pytest.raises(anthropic.BadRequestError) as info:
        client(engines).messages.create(
            model="dify", max_tokens=10, messages=[{"role": "user", "content": [image]}]
        )
    error = error_of(info.value)
    assert error["code"] == "unsupported_parameter" and error["param"] == "image"


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        ("dify", {"stop_sequences": ["END"]}, "stop_sequences"),
        (
            "claude",
            {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
            "output_config.format",
        ),
    ],
)
def test_a_refusal_names_the_parameter_as_anthropic_does(
    engines: EnginesGateway, model: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client(engines).messages.create(
            model=model, max_tokens=10, messages=ask("x"), extra_body=extra
        )
    error = error_of(info.value)
    assert error["code"] == "unsupported_parameter" and error["param"] == param
    engine = {"dify": "dify", "claude": "anthropic"}[model]
    assert error["message"] == f"engine {engine!r} cannot honour the parameter {param!r}"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_k": 5}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, None),
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "m"}]}, None),
        ({"output_config": {"effort": "high"}}, "output_config.effort"),
    ],
)
def test_what_no_engine_takes_is_refused_by_name(
    engines: EnginesGateway, extra: dict[str, Any], param: str | None
) -> None:
    before = len(engines.openai.requests)
    with pytest.raises(anthropic.BadRequestError) as info:
        client(engines).messages.create(
            model="gpt", max_tokens=10, messages=ask("x"), extra_body=extra
        )
    error = error_of(info.value)
    assert error["code"] == "unsupported_parameter"
    expected = (
        param
        or {"tools": "tools.web_search_20250305", "mcp_servers": "mcp_servers"}[next(iter(extra))]
    )
    assert error["param"] == expected and expected in error["message"]
    assert len(engines.openai.requests) == before


def test_disabled_thinking_is_no_refusal(engines: EnginesGateway) -> None:
    reply = client(engines).messages.create(
        model="gpt", max_tokens=10, messages=ask("plain"), thinking={"type": "disabled"}
    )
    assert reply.content[0].text == "echo: plain"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt", "messages": ask("no max_tokens")},
        {"model": "gpt", "max_tokens": 10, "messages": []},
        {"model": "gpt", "max_tokens": 10, "messages": ask("x"), "temperature": 1.5},
        {"model": "gpt", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
        {"model": "gpt", "max_tokens": 10, "messages": ask("x"), "tool_choice": {"type": "any"}},
    ],
)
def test_a_malformed_request_is_an_invalid_request_error(
    engines: EnginesGateway, body: dict[str, Any]
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client(engines).post("/v1/messages", body=body, cast_to=httpx.Response)
    error = error_of(info.value)
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"


def test_a_prefill_is_refused_by_name(engines: EnginesGateway) -> None:
    messages = [*ask("json please"), {"role": "assistant", "content": "{"}]
    with pytest.raises(anthropic.BadRequestError) as info:
        client(engines).messages.create(model="claude", max_tokens=10, messages=messages)
    assert error_of(info.value)["param"] == "prefill"


def test_an_engine_rate_limit_is_a_rate_limit_error(engines: EnginesGateway) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        client(engines).messages.create(model="gpt", max_tokens=10, messages=ask("[[status 429]]"))
    assert error_of(info.value)["type"] == "rate_limit_error"
    assert info.value.response.headers["retry-after"] == "2"


@pytest.mark.parametrize("stream", [False, True])
def test_an_engine_failure_before_the_answer_is_a_server_error(
    engines: EnginesGateway, stream: bool
) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        client(engines).messages.create(
            model="gpt", max_tokens=10, messages=ask("[[status 500]]"), stream=stream
        )
    assert info.value.status_code == 502
    assert error_of(info.value)["type"] == "api_error"


@pytest.mark.parametrize(
    ("model", "directive", "kind"),
    [
        ("claude", "[[error-after 2 overloaded_error]]", "overloaded_error"),
        ("gpt", "[[die-after 2]]", "api_error"),
    ],
)
def test_a_failure_mid_stream_is_an_error_event(
    engines: EnginesGateway, model: str, directive: str, kind: str
) -> None:
    stream = client(engines).messages.create(
        model=model, max_tokens=100, messages=ask(directive), stream=True
    )
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in stream:
            seen.append(event.type)
    assert seen[0] == "message_start" and "content_block_delta" in seen
    assert "message_stop" not in seen
    error = info.value.body["error"]
    assert error["type"] == kind and error["code"].startswith("upstream")
    assert error["trace_id"] == info.value.response.headers["x-trace-id"]


def test_a_lone_surrogate_is_refused_as_json(engines: EnginesGateway) -> None:
    raw = b'{"model": "gpt", "max_tokens": 5, "messages": [{"role": "user", "content": "\\udc80"}]}'
    answer = httpx.post(
        f"{engines.url}/v1/messages",
        content=raw,
        headers={"x-api-key": make_token("surrogate"), "content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": []}],
        [{"role": "user", "content": " \n"}],
        [{"role": "user", "content": [{"type": "text", "text": ""}]}],
        [
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_never", "content": "x"}],
            }
        ],
    ],
)
def test_empty_text_and_a_result_of_no_call_are_invalid(
    engines: EnginesGateway, messages: list[dict[str, Any]]
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client(engines).messages.create(model="gpt", max_tokens=10, messages=messages)
    assert error_of(info.value)["code"] == "invalid_request"
