"""The hand-off suite's server: a chatgate whose assistants hand off on request, on engine
failure and on guard blocks, a webhook receiver over real HTTP, and the helpers its tests share."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from chatgate.core.config import AssistantConfig, Settings
from chatgate.core.policies import GuardPolicy, HandoffPolicy
from tests.conftest import (
    GUARDS_OFF,
    Caller,
    Double,
    double_provider,
    make_token,
    open_caller,
    remote_only_settings,
)
from tests.doubles.server import serve_app
from tests.runner import run_chatgate

WEBHOOK_SECRET = "whsec-" + "s" * 40
NOTICE = "A person will take it from here. 人工客服马上来。"
PHONE = "13812345678"


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """A hand-off webhook's receiver: `/ok` takes every call, `/flaky` fails (500) a session's
    first two, `/down` fails them all, `/refuse` refuses them (401)."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{kind}", self.receive)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        kind = request.match_info["kind"]
        delivery = Delivery(f"/{kind}", dict(request.headers), body, time.monotonic())
        self.deliveries.append(delivery)
        session_id = delivery.event["session_id"]
        tries = len(self.of(session_id))
        if kind == "refuse":
            return web.json_response({"error": "bad signature"}, status=401)
        if kind == "down" or (kind == "flaky" and tries <= 2):
            return web.json_response({"error": "not now"}, status=500)
        return web.json_response({"ok": True})

    def of(self, session_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.event["session_id"] == session_id]


def verify(delivery: Delivery, secret: str = WEBHOOK_SECRET) -> int:
    """The receiver's check of `X-Chatgate-Signature`, as docs/api.md tells it: the timestamp."""
    parts = dict(p.split("=", 1) for p in delivery.headers["X-Chatgate-Signature"].split(","))
    signed = parts["t"].encode() + b"." + delivery.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"]), "the signature does not verify"
    return int(parts["t"])


def assistant(assistant_id: str, policy: HandoffPolicy | None, **fields: Any) -> AssistantConfig:
    values: dict[str, Any] = {
        "id": assistant_id, "name": assistant_id, "provider": "double",
        "model": f"model-{assistant_id}", "system_prompt": "You help.",
        "max_context_tokens": 8000, "max_answer_tokens": 200, "guards": GUARDS_OFF,
        "handoff": policy, **fields,
    }  # fmt: skip
    return AssistantConfig(**values)


def handoff_settings(database_url: str, double: Double, hook: str, **overrides: Any) -> Settings:
    def ask(path: str) -> HandoffPolicy:
        return HandoffPolicy(on_request=True, webhook_url=f"{hook}/{path}", message=NOTICE)

    failing = double_provider(double.url).model_copy(update={"id": "failing"})
    assistants = [
        assistant("h-ask", ask("ok")),
        assistant("h-flaky", ask("flaky")),
        assistant("h-down", ask("down")),
        assistant("h-refused", ask("refuse")),
        assistant("h-nohook", HandoffPolicy(on_request=True)),
        assistant("h-off", None),
        # Engines that fail get an engine of their own, so its breaker trips no one else's.
        assistant("h-fail", HandoffPolicy(on_engine_failure=True), provider="failing"),
        assistant(
            "h-canned",
            HandoffPolicy(on_engine_failure=True),
            provider="failing",
            fallback_answer="The assistant is busy. 当前系统繁忙。",
        ),
        assistant("h-guard", HandoffPolicy(on_guard_blocks=2), guards=GuardPolicy(pii="block")),
    ]
    values: dict[str, Any] = {
        "providers": [double_provider(double.url), failing],
        "assistants": assistants,
        "handoff_webhook_secret": WEBHOOK_SECRET,
        "handoff_webhook_backoff_seconds": 0.1,
        **overrides,
    }
    return remote_only_settings(database_url, double.url, **values)


@dataclass
class Desk:
    url: str
    receiver: Receiver
    double: Double


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    with serve_app(hooks.app()) as url:
        hooks.url = url
        yield hooks


@pytest.fixture(scope="session")
def desk(database_url: str, openai_double: Double, receiver: Receiver) -> Iterator[Desk]:
    settings = handoff_settings(database_url, openai_double, receiver.url)
    with run_chatgate(settings) as url:
        yield Desk(url=url, receiver=receiver, double=openai_double)


@pytest.fixture
async def user(desk: Desk) -> AsyncIterator[Caller]:
    async with open_caller(desk.url) as caller:
        yield caller


@pytest.fixture
async def admin(desk: Desk) -> AsyncIterator[Caller]:
    async with open_caller(desk.url, "operator-1", token=make_token("operator-1", admin=True)) as c:
        yield c


async def send(
    user: Caller, session_id: str, content: str, mode: str = "blocking"
) -> httpx.Response:
    return await user.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, "response_mode": mode}
    )


async def handoff_of(user: Caller, session_id: str) -> dict[str, Any] | None:
    response = await user.http.get(f"/v1/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return response.json()["handoff"]  # type: ignore[no-any-return]


async def listed(admin: Caller, session_id: str, status: str = "all") -> dict[str, Any] | None:
    response = await admin.http.get("/v1/admin/handoffs", params={"status": status})
    assert response.status_code == 200, response.text
    return next((h for h in response.json()["data"] if h["session_id"] == session_id), None)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 15.0, every: float = 0.1
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(every)
