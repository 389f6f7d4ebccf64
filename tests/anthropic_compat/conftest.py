"""One chatgate for the Anthropic dialect's tests, with an assistant on every kind of engine
(tests/engines_gateway.py), and the official `anthropic` SDK pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.conftest import make_token
from tests.engines_gateway import EnginesGateway, engines_gateway

# A 1x1 PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather in a city now.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME: dict[str, Any] = {
    "name": "get_time",
    "description": "The local time in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "hours24": {"type": "boolean"}},
        "required": ["city", "hours24"],
    },
}


@pytest.fixture(scope="package")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnginesGateway]:
    with engines_gateway(tmp_path_factory.mktemp("anthropic-dialect") / "chatgate.db") as gateway:
        yield gateway


def client(engines: EnginesGateway, user: str = "claude-sdk-user") -> anthropic.Anthropic:
    """The SDK as Anthropic's users configure it: the key in `api_key` (sent as x-api-key)."""
    return anthropic.Anthropic(base_url=engines.url, api_key=make_token(user), max_retries=0)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
