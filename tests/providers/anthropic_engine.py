"""The Anthropic engine against the double of the Messages API over real HTTP, for the tests of
what it sends and reads beyond text (test_anthropic_tools.py, test_anthropic_content.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from chatgate.core.config import ProviderConfig
from chatgate.core.engine_config import Timeouts
from chatgate.providers.anthropic import AnthropicProvider
from chatgate.providers.base import ChatTurn, CompletionRequest
from chatgate.providers.messages import Tool, ToolCall, ToolCallDelta
from tests.doubles.anthropic_api import AnthropicDouble
from tests.doubles.server import serve_app

API_KEY = "sk-ant-tools"
KEY_ENV = "ANTHROPIC_TOOLS_KEY"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "alerts": {"type": "boolean"},
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "country": {"type": "string"}},
            "required": ["lat", "country"],
        },
        "note": {"type": "string"},
    },
    "required": ["city", "unit", "days", "alerts", "where"],
}
WEATHER = Tool("get_weather", "The weather in a city", WEATHER_SCHEMA)
CLOCK = Tool("get_time")  # no description, no parameters
TOOLS = (WEATHER, CLOCK)


@dataclass
class Served:
    api: AnthropicDouble
    url: str


@contextmanager
def serve_double() -> Iterator[Served]:
    api = AnthropicDouble(api_key=API_KEY)
    with serve_app(api.app()) as url:
        yield Served(api, url)


@asynccontextmanager
async def open_engine(url: str, *, stream: bool) -> AsyncIterator[AnthropicProvider]:
    """An engine on the double (the key in KEY_ENV, which the caller sets)."""
    config = ProviderConfig(
        id="claude",
        type="anthropic",
        base_url=url,
        api_key_env=KEY_ENV,
        stream=stream,
        timeouts=Timeouts(connect=2, first_token=5, total=10),
    )
    provider = AnthropicProvider(config)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


@dataclass
class Answer:
    text: str = ""
    finish_reason: str | None = None
    deltas: list[ToolCallDelta] = field(default_factory=list)

    @property
    def calls(self) -> list[ToolCall]:
        """The calls reassembled as an OpenAI client does: by index, the first piece naming."""
        calls: dict[int, dict[str, str]] = {}
        for delta in self.deltas:
            if delta.index not in calls:
                assert delta.id and delta.name, "a call's first piece names it"
                calls[delta.index] = {"id": delta.id, "name": delta.name, "arguments": ""}
            else:
                assert delta.id is None and delta.name is None
            calls[delta.index]["arguments"] += delta.arguments
        assert sorted(calls) == list(range(len(calls))), "calls are numbered from 0"
        return [ToolCall(**calls[i]) for i in sorted(calls)]


def user(text: str) -> ChatTurn:
    return ChatTurn(role="user", content=text)


async def ask(engine: AnthropicProvider, *turns: ChatTurn, **fields: Any) -> Answer:
    request = CompletionRequest(
        model="claude-double", messages=list(turns), max_tokens=200, **fields
    )
    answer = Answer()
    async for chunk in engine.stream(request):
        answer.text += chunk.text
        answer.deltas += chunk.tool_calls or []
        answer.finish_reason = chunk.finish_reason or answer.finish_reason
    return answer
