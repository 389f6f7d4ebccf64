"""A chatgate with an assistant on every kind of engine (doubles of OpenAI, Anthropic and Dify
served over HTTP; the bundled model), for the tests of the client dialects.

Assistants: `gpt` (OpenAI-compatible), `gpt-whole` (the same engine, not streamed), `claude`
(Anthropic), `claude-whole`, `dify` (a Dify app), `helper` (the bundled model),
`gpt-then-local` (the OpenAI engine with the bundled model as its fallback)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatgate.core.config import AssistantConfig, ProviderConfig, Settings
from chatgate.core.engine_config import Timeouts
from tests.conftest import GUARDS_OFF, settings_for
from tests.doubles.anthropic_api import AnthropicDouble
from tests.doubles.dify_api import DifyDouble
from tests.doubles.openai_api import OpenAIDouble
from tests.doubles.server import serve_app
from tests.runner import run_chatgate

TIMEOUTS = Timeouts(connect=2, first_token=5, total=30)


@dataclass
class EnginesGateway:
    url: str
    settings: Settings
    openai: OpenAIDouble
    anthropic: AnthropicDouble
    dify: DifyDouble


def _assistant(assistant_id: str, provider: str, **fields: Any) -> AssistantConfig:
    values: dict[str, Any] = {
        "name": assistant_id,
        "model": f"{provider}-model",
        "system_prompt": f"You are {assistant_id}.",
        "max_context_tokens": 8000,
        "max_answer_tokens": 200,
        "temperature": 0.5,
        "guards": GUARDS_OFF,
        **fields,
    }
    return AssistantConfig(id=assistant_id, provider=provider, **values)


def _engine(provider_id: str, kind: str, url: str, key_env: str, **fields: Any) -> ProviderConfig:
    return ProviderConfig(
        id=provider_id, type=kind, base_url=url, api_key_env=key_env, timeouts=TIMEOUTS, **fields
    )


@contextmanager
def engines_gateway(database_path: Path) -> Iterator[EnginesGateway]:
    os.environ.update(
        ENGINES_OPENAI_KEY="sk-openai", ENGINES_ANTHROPIC_KEY="sk-ant", ENGINES_DIFY_KEY="app-key"
    )
    openai = OpenAIDouble(api_key="sk-openai")
    anthropic = AnthropicDouble(api_key="sk-ant")
    dify = DifyDouble(api_key="app-key")
    with (
        serve_app(openai.app()) as openai_url,
        serve_app(anthropic.app()) as anthropic_url,
        serve_app(dify.app()) as dify_url,
    ):
        providers = [
            ProviderConfig(id="local", type="local", queue_timeout=5.0),
            _engine("openai", "openai", f"{openai_url}/v1", "ENGINES_OPENAI_KEY"),
            _engine(
                "openai-whole", "openai", f"{openai_url}/v1", "ENGINES_OPENAI_KEY", stream=False
            ),
            _engine("anthropic", "anthropic", anthropic_url, "ENGINES_ANTHROPIC_KEY"),
            _engine(
                "anthropic-whole", "anthropic", anthropic_url, "ENGINES_ANTHROPIC_KEY", stream=False
            ),
            _engine("dify", "dify", f"{dify_url}/v1", "ENGINES_DIFY_KEY"),
        ]
        assistants = [
            _assistant("gpt", "openai"),
            _assistant("gpt-whole", "openai-whole"),
            _assistant("claude", "anthropic"),
            _assistant("claude-whole", "anthropic-whole"),
            _assistant("dify", "dify"),
            _assistant(
                "helper",
                "local",
                model="smollm2-135m-instruct",
                max_context_tokens=1024,
                max_answer_tokens=64,
                temperature=0.0,
            ),
            _assistant("gpt-then-local", "openai", fallback_providers=["local"]),
        ]
        settings = settings_for(
            f"sqlite+aiosqlite:///{database_path}",
            openai_url,
            providers=providers,
            assistants=assistants,
        )
        with run_chatgate(settings) as url:
            yield EnginesGateway(url, settings, openai, anthropic, dify)
