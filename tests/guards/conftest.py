"""The guards suite's server: a chatgate of its own, a "cloud" and a "private" OpenAI double, and
assistants whose guard policies block, mask, route and flag; with the helpers its tests share."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from chatgate.core.config import AssistantConfig, ProviderConfig, Settings
from chatgate.core.engine_config import Timeouts
from chatgate.core.policies import GuardPolicy
from tests.conftest import (
    Caller,
    _create_pg_database,
    _drop_pg_database,
    make_token,
    open_caller,
    settings_for,
)
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app
from tests.runner import run_chatgate

PHONE = "13812345678"
PHONE_SPACED = "138 1234 5678"
ID_NUMBER = "11010519491231002X"
CARD = "4111 1111 1111 1111"
MAIL = "zhang.san@example.com"
RAW = [PHONE, PHONE_SPACED, ID_NUMBER, CARD, "4111111111111111", MAIL]


def engine(provider_id: str, url: str) -> ProviderConfig:
    return ProviderConfig(
        id=provider_id, type="openai", base_url=f"{url}/v1", api_key_env="DOUBLE_API_KEY",
        timeouts=Timeouts(connect=2, first_token=3, total=20),
    )  # fmt: skip


def assistant(assistant_id: str, **guards: Any) -> AssistantConfig:
    return AssistantConfig(
        id=assistant_id, name=assistant_id, provider="cloud", model=f"model-{assistant_id}",
        system_prompt="You help.", max_context_tokens=8000, max_answer_tokens=200,
        guards=GuardPolicy(**guards),
    )  # fmt: skip


ASSISTANTS = [
    assistant("g-block", pii="block", injection="block"),
    assistant("g-mask", pii="mask", injection="flag"),
    assistant("g-route", pii="route", private_provider="private"),
    assistant("g-nowhere", pii="route"),
    assistant("g-email-only", pii="block", pii_kinds=["email"]),
]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Guarded:
    url: str
    settings: Settings
    cloud: OpenAIDouble
    private: OpenAIDouble
    logs: Records


@pytest.fixture(scope="module")
def guard_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this suite's own: its assistants name engines other suites do not have."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('guards') / 'chatgate.db'}"
        return
    name = f"chatgate_guards_{secrets.token_hex(4)}"
    asyncio.run(_create_pg_database(name))
    yield f"{database_url.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_drop_pg_database(name))


def guarded_settings(database: str, cloud_url: str, private_url: str, **extra: Any) -> Settings:
    return settings_for(
        database, cloud_url, providers=[engine("cloud", cloud_url), engine("private", private_url)],
        assistants=ASSISTANTS, **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def guarded(guard_database: str) -> Iterator[Guarded]:
    cloud, private = OpenAIDouble(api_key="sk-double"), OpenAIDouble(api_key="sk-double")
    logs = Records()
    logger = logging.getLogger("chatgate.guards")
    logger.addHandler(logs)
    try:
        with serve_app(cloud.app()) as cloud_url, serve_app(private.app()) as private_url:
            settings = guarded_settings(guard_database, cloud_url, private_url)
            with run_chatgate(settings) as url:
                yield Guarded(url, settings, cloud, private, logs)
    finally:
        logger.removeHandler(logs)


@pytest.fixture
async def user(guarded: Guarded) -> AsyncIterator[Caller]:
    async with open_caller(guarded.url) as caller:
        yield caller


@pytest.fixture
async def admin(guarded: Guarded) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_token('guard-admin', admin=True)}"}
    async with httpx.AsyncClient(base_url=guarded.url, headers=headers, timeout=30) as client:
        yield client


def marker() -> str:
    """A word unique to one test, to find the engine requests it caused."""
    return "mark" + secrets.token_hex(4).replace("0", "z")


def sent_with(double: OpenAIDouble, mark: str) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in double.requests if mark in json.dumps(r)]


def assert_no_raw(text: str) -> None:
    for value in RAW:
        assert value not in text, f"{value!r} leaked into {text[:300]!r}"


async def send(
    caller: Caller, session_id: str, content: str, mode: str = "blocking"
) -> httpx.Response:
    return await caller.http.post(
        f"/v1/sessions/{session_id}/messages", json={"content": content, "response_mode": mode}
    )


async def audit_events(admin: httpx.AsyncClient, user_id: str, action: str) -> list[dict[str, Any]]:
    response = await admin.get("/v1/admin/audit", params={"user_id": user_id, "action": action})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    for event in events:
        assert_no_raw(json.dumps(event, ensure_ascii=False))
    return events


async def guard_hits(url: str) -> dict[tuple[str, str], float]:
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    found = re.findall(
        r'^chatgate_guard_hits_total\{action="(\w+)",kind="(\w+)"\} ([\d.e+]+)$', text, re.M
    )
    return {(kind, action): float(value) for action, kind, value in found}


def sdk(guarded: Guarded, user: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{guarded.url}/v1", api_key=make_token(user), max_retries=0)
