"""The Responses API through the official `openai` SDK, as each test's own user."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam

from tests.conftest import Gateway, make_token

WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@dataclass
class Client:
    """One user: the SDK, and plain HTTP for chatgate's own API (history, sessions)."""

    user_id: str
    sdk: openai.OpenAI
    http: httpx.Client

    def history(self, session_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/v1/history/{session_id}", params={"limit": 200})
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def session(self, session_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/sessions/{session_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def open_client(url: str, user_id: str | None = None) -> Client:
    user_id = user_id or f"resp-{uuid.uuid4().hex[:12]}"
    token = make_token(user_id)
    return Client(
        user_id=user_id,
        sdk=openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=60),
        http=httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60),
    )


@pytest.fixture
def alice(gateway: Gateway) -> Iterator[Client]:
    client = open_client(gateway.url)
    yield client
    client.http.close()
    client.sdk.close()


@pytest.fixture
def bob(gateway: Gateway) -> Iterator[Client]:
    client = open_client(gateway.url)
    yield client
    client.http.close()
    client.sdk.close()


def session_of(response: Any) -> str:
    extra = response.model_extra or {}
    session_id: str = extra["chatgate_session_id"]
    return session_id
