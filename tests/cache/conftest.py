"""A chatgate of the cache suite's own (engines played by the OpenAI double), and helpers that
ask questions and count the engine calls they cost."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Caller, Double, Gateway, make_token, open_caller, remote_only_settings
from tests.runner import run_chatgate

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def cached_gateway(database_url: str, openai_double: Double) -> Iterator[Gateway]:
    """In-process cache (no Redis), the default TTL."""
    settings = remote_only_settings(database_url, openai_double.url)
    with run_chatgate(settings) as url:
        yield Gateway(url=url, settings=settings, double=openai_double)


@pytest.fixture
async def carol(cached_gateway: Gateway) -> AsyncIterator[Caller]:
    async with open_caller(cached_gateway.url) as caller:
        yield caller


@pytest.fixture
async def dave(cached_gateway: Gateway) -> AsyncIterator[Caller]:
    async with open_caller(cached_gateway.url) as caller:
        yield caller


def unique(question: str) -> str:
    """The question made unique to one test, so no other test's answer can be in the cache."""
    return f"{question} [{secrets.token_hex(4)}]"


async def qa(caller: Caller, question: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", None)
    body = {"question": question, "assistant_id": "echo", **extra}
    response = await caller.http.post("/v1/qa", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def first_message(
    caller: Caller, content: str, *, assistant_id: str = "echo", mode: str = "blocking",
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], httpx.Response]:  # fmt: skip
    session = await caller.new_session(assistant_id)
    response = await caller.http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": content, "response_mode": mode},
        headers=headers,
    )
    return session, response


class EngineCalls:
    """Counts the calls the OpenAI double got since it was made."""

    def __init__(self, double: Double) -> None:
        self._double = double
        self._start = len(double.api.requests)

    @property
    def count(self) -> int:
        return len(self._double.api.requests) - self._start

    def last_sent(self) -> list[str]:
        """The message contents of the last call."""
        return [m["content"] for m in self._double.api.requests[-1]["messages"]]


@pytest.fixture
def engine(openai_double: Double) -> EngineCalls:
    return EngineCalls(openai_double)


@pytest.fixture
async def admin(cached_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('cache-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=cached_gateway.url, headers=headers) as client:
        yield client


async def new_assistant(admin: httpx.AsyncClient, **changes: Any) -> str:
    spec = {
        "id": f"faq-{secrets.token_hex(3)}", "name": "FAQ", "provider": "double",
        "model": "double-faq", "system_prompt": "Answer FAQs.", "max_context_tokens": 4000,
        "max_answer_tokens": 100, **changes,
    }  # fmt: skip
    created = await admin.post("/v1/admin/assistants", json=spec)
    assert created.status_code == 201, created.text
    return str(spec["id"])
