"""Gateways and engines for the resilience suites: engines that really fail, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from chatgate.core.config import AssistantConfig, ProviderConfig, Settings
from chatgate.core.engine_config import Timeouts
from chatgate.core.policies import BreakerPolicy, CacheSettings, RateLimitSettings, RetryPolicy
from tests.conftest import GUARDS_OFF, settings_for
from tests.doubles.server import serve_app
from tests.resilience.engines import SwitchableEngine

REDIS_URL = "redis://127.0.0.1:6379/0"
BUSY = "当前系统繁忙，请稍后再试"


@dataclass
class Engine:
    url: str
    api: SwitchableEngine


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A fresh engine per test: a new port, so a fresh breaker too (breakers are per endpoint)."""
    api = SwitchableEngine()
    with serve_app(api.app()) as url:
        yield Engine(url=url, api=api)


@pytest.fixture
def backup() -> Iterator[Engine]:
    api = SwitchableEngine()
    with serve_app(api.app()) as url:
        yield Engine(url=url, api=api)


def unique(prefix: str) -> str:
    """Ids of their own per test, so metrics labelled by provider never mix tests."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def engine_config(
    provider_id: str,
    url: str,
    *,
    timeouts: Timeouts | None = None,
    retries: RetryPolicy | None = None,
    breaker: BreakerPolicy | None = None,
    **fields: Any,
) -> ProviderConfig:
    return ProviderConfig(
        id=provider_id,
        type=fields.pop("type", "openai"),
        base_url=fields.pop("base_url", f"{url}/v1"),
        api_key_env=fields.pop("api_key_env", "DOUBLE_API_KEY"),
        timeouts=timeouts or Timeouts(connect=1, first_token=2, between_tokens=2, total=10),
        retries=retries or RetryPolicy(attempts=0),
        breaker=breaker or BreakerPolicy(enabled=False),
        **fields,
    )


def assistant_on(
    assistant_id: str,
    provider: str,
    *,
    fallbacks: tuple[str, ...] = (),
    answer: str | None = None,
    **fields: Any,
) -> AssistantConfig:
    return AssistantConfig(
        id=assistant_id,
        name=assistant_id,
        provider=provider,
        fallback_providers=list(fallbacks),
        fallback_answer=answer,
        model="double-model",
        system_prompt="Echo the user.",
        max_context_tokens=4000,
        max_answer_tokens=200,
        **{"guards": GUARDS_OFF, **fields},
    )


def gateway_settings(
    database_url: str,
    providers: list[ProviderConfig],
    assistants: list[AssistantConfig],
    **overrides: Any,
) -> Settings:
    # Rate limits and the answer cache are other suites' subjects; here they would get in the
    # way (a cached answer never reaches an engine).
    values: dict[str, Any] = {
        "rate_limits": RateLimitSettings(enabled=False),
        "cache": CacheSettings(enabled=False),
        **overrides,
    }
    return settings_for(
        database_url, "http://127.0.0.1:9", providers=providers, assistants=assistants, **values
    )


async def ask(
    http: httpx.AsyncClient, assistant_id: str, content: str, mode: str = "blocking"
) -> tuple[dict[str, Any], httpx.Response]:
    session = (await http.post("/v1/sessions", json={"assistant_id": assistant_id})).json()
    response = await http.post(
        f"/v1/sessions/{session['id']}/messages",
        json={"content": content, "response_mode": mode},
    )
    return session, response


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def metric(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def eventually(check: Any, what: str, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@contextmanager
def worker_process(settings: Settings, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `chatgate worker` on the settings' queue, started and ready."""
    assert settings.redis_url
    config = folder / "worker.yaml"
    config.write_text(yaml.safe_dump({
        "providers": [p.model_dump(mode="json") for p in settings.providers],
        "assistants": [a.model_dump(mode="json") for a in settings.assistants],
    }))  # fmt: skip
    env = {
        **os.environ,
        "CHATGATE_CONFIG": str(config),
        "CHATGATE_DATABASE_URL": settings.database_url,
        "CHATGATE_REDIS_URL": settings.redis_url,
        "CHATGATE_TASK_QUEUE": settings.task_queue,
        "CHATGATE_STREAM_FLUSH_SECONDS": "0.2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatgate.cli", "worker"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"worker ready" in line:
            break
    else:
        raise RuntimeError("the worker exited before it was ready")
    # Its log is read on, so a full pipe never stalls it.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
