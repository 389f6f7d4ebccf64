"""Real servers for every test: chatgate under uvicorn on a loopback port, against SQLite and
PostgreSQL in turn, with engines played by doubles that speak their provider's HTTP API."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from chatgate.core.config import AssistantConfig, ProviderConfig, Settings
from chatgate.core.db import Database
from chatgate.core.engine_config import Timeouts
from chatgate.core.policies import GuardPolicy, RateLimitSettings
from chatgate.vault.keyring import KeyRing
from chatgate.vault.sealed import Sealing, sealing
from chatgate.vault.service import Vault
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app
from tests.runner import run_chatgate

JWT_SECRET = "test-secret-" + "x" * 40
# Every chatgate the tests start, in this process or as a child, seals conversations at rest
# (PostgreSQL refuses to start without keys); tests/vault starts others with their own keys.
TEST_ENCRYPTION_KEYS = "test1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
os.environ["CHATGATE_ENCRYPTION_KEYS"] = TEST_ENCRYPTION_KEYS
# The engine doubles' assistants: guards would be seeded on (a remote engine), and the tests
# using these are about something else; tests/guards sets its own.
GUARDS_OFF = GuardPolicy()
JWT_AUDIENCE = "chatgate-tests"  # the `aud` every test token carries and every gateway expects
PG_ADMIN_URL = os.environ.get("CHATGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Double:
    url: str
    api: OpenAIDouble


@pytest.fixture(scope="session")
def openai_double() -> Iterator[Double]:
    api = OpenAIDouble(api_key="sk-double")
    with serve_app(api.app()) as url:
        yield Double(url=url, api=api)


async def _create_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "chatgate.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"chatgate_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_create_pg_database(name))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is required for the tests and is not reachable: {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(_drop_pg_database(name))


def double_provider(double_url: str, **timeouts: float) -> ProviderConfig:
    return ProviderConfig(
        id="double",
        type="openai",
        base_url=f"{double_url}/v1",
        api_key_env="DOUBLE_API_KEY",
        timeouts=Timeouts(**{"connect": 2, "first_token": 3, "total": 20, **timeouts}),
    )


def settings_for(database_url: str, double_url: str, **overrides: Any) -> Settings:
    os.environ["DOUBLE_API_KEY"] = "sk-double"
    values: dict[str, Any] = {
        "database_url": database_url,
        "auth_mode": "jwt",
        "jwt_secret": JWT_SECRET,
        "jwt_audience": JWT_AUDIENCE,
        "stream_flush_seconds": 0.2,
        "max_content_chars": 2000,
        # Generous limits for ordinary tests; tests/ratelimit sets tight ones on purpose.
        "rate_limits": RateLimitSettings(
            requests_per_minute=100_000, ip_requests_per_minute=100_000
        ),
        "providers": [
            ProviderConfig(id="local", type="local", queue_timeout=1.0),
            double_provider(double_url),
        ],
        "assistants": [
            AssistantConfig(
                id="helper",
                name="Helper",
                provider="local",
                model="smollm2-135m-instruct",
                system_prompt="You are helpful.",
                max_context_tokens=1024,
                max_answer_tokens=48,
                temperature=0.0,
            ),
            AssistantConfig(
                id="echo",
                name="Echo",
                provider="double",
                model="double-echo",
                guards=GUARDS_OFF,
                system_prompt="Echo the user.",
                max_context_tokens=8000,
                max_answer_tokens=200,
            ),
            AssistantConfig(
                id="support",
                name="Support",
                provider="double",
                model="double-support",
                guards=GUARDS_OFF,
                system_prompt="You are support.",
                max_context_tokens=8000,
                max_answer_tokens=200,
            ),
            AssistantConfig(
                id="tiny",
                name="Tiny context",
                provider="double",
                model="double-tiny",
                guards=GUARDS_OFF,
                system_prompt="Be brief.",
                max_context_tokens=120,
                max_answer_tokens=40,
            ),
        ],
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Gateway:
    url: str
    settings: Settings
    double: Double


@pytest.fixture(scope="session")
def gateway(database_url: str, openai_double: Double) -> Iterator[Gateway]:
    settings = settings_for(database_url, openai_double.url)
    with run_chatgate(settings) as url:
        yield Gateway(url=url, settings=settings, double=openai_double)


def make_token(
    user_id: str, *, admin: bool = False, secret: str = JWT_SECRET, ttl: int = 7200
) -> str:
    claims: dict[str, Any] = {"sub": user_id, "exp": int(time.time()) + ttl, "aud": JWT_AUDIENCE}
    if admin:
        claims["role"] = "admin"
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass
class Caller:
    """An HTTP client acting as one user, over a real socket."""

    user_id: str
    http: httpx.AsyncClient

    async def new_session(self, assistant_id: str = "echo", **body: Any) -> dict[str, Any]:
        response = await self.http.post("/v1/sessions", json={"assistant_id": assistant_id, **body})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def history(self, session_id: str, **params: Any) -> dict[str, Any]:
        response = await self.http.get(f"/v1/history/{session_id}", params=params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


async def _caller(gateway: Gateway) -> AsyncIterator[Caller]:
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {make_token(user_id)}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as http:
        yield Caller(user_id=user_id, http=http)


@pytest.fixture
async def alice(gateway: Gateway) -> AsyncIterator[Caller]:
    async for caller in _caller(gateway):
        yield caller


@pytest.fixture
async def bob(gateway: Gateway) -> AsyncIterator[Caller]:
    async for caller in _caller(gateway):
        yield caller


def parse_sse(raw: str) -> list[dict[str, Any]]:
    """Splits an event stream into {"id", "event", "data"} records."""
    import json

    events = []
    for block in raw.strip().split("\n\n"):
        record: dict[str, Any] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            record[key] = json.loads(value) if key == "data" else value
        if record:
            events.append(record)
    return events


ROOT = Path(__file__).resolve().parent.parent


# --- shared helpers for the chat-core suites -------------------------------------------------


def remote_only_settings(database_url: str, double_url: str, **overrides: Any) -> Settings:
    """Test settings without the local engine: for dedicated gateways that need no model."""
    assistants = [
        a for a in settings_for(database_url, double_url).assistants if a.provider != "local"
    ]
    values: dict[str, Any] = {
        "providers": [double_provider(double_url)],
        "assistants": assistants,
        **overrides,
    }
    return settings_for(database_url, double_url, **values)


@asynccontextmanager
async def open_caller(
    url: str, user_id: str | None = None, *, token: str | None = None
) -> AsyncIterator[Caller]:
    """A Caller on any running chatgate (the `alice`/`bob` fixtures are on `gateway`)."""
    user_id = user_id or f"user-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {token or make_token(user_id)}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        yield Caller(user_id=user_id, http=http)


@asynccontextmanager
async def read_database(database_url: str) -> AsyncIterator[AsyncSession]:
    """A database session of the test's own, to check what chatgate really stored: sealed
    columns read in the clear (every user's data key loaded with the tests' keys); rows it
    writes are stored unsealed, as before encryption was on."""
    vault = Vault(Database(database_url), KeyRing.parse(TEST_ENCRYPTION_KEYS))
    try:
        await vault.load_all()
    finally:
        await vault.close()
    reading = sealing.set(Sealing(vault, None))
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as db:
            yield db
    finally:
        await engine.dispose()
        sealing.reset(reading)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error envelope of API.md, with the status, code and the response's own trace id."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    assert error["trace_id"] and error["trace_id"] == response.headers["x-trace-id"]
    return body


@asynccontextmanager
async def serve_chatgate(settings: Settings) -> AsyncIterator[str]:
    """`run_chatgate` for async tests: its migrations run their own event loop, so in a thread."""
    server = run_chatgate(settings)
    url = await asyncio.to_thread(server.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)


@dataclass
class PrivateRedis:
    """A Redis of one test's own, so stopping it for real disturbs no one else."""

    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True
        )


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    from tests.doubles.server import free_port

    redis = PrivateRedis(port=free_port())
    subprocess.run(
        ["redis-server", "--port", str(redis.port), "--bind", "127.0.0.1", "--daemonize", "yes",
         "--save", "", "--appendonly", "no"],
        check=True,
    )  # fmt: skip
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(redis.port), "ping"], capture_output=True).stdout:
            break
        time.sleep(0.05)
    yield redis
    redis.stop()
