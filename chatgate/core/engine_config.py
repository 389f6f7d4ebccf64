"""The engines' configuration: providers (the models that answer) and embedders (the models that
embed documents and questions), each with its timeouts and the environment variable holding its
key; and what every part of the settings shares (`ID_PATTERN`, `ConfigError`)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from chatgate.core.policies import BreakerPolicy, RetryPolicy

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class ConfigError(RuntimeError):
    """Bad configuration, reported at start-up with a message a person can act on."""


class Timeouts(BaseModel):
    connect: float = Field(5.0, gt=0, description="seconds to open the connection")
    first_token: float = Field(30.0, gt=0, description="seconds until the first token")
    between_tokens: float = Field(30.0, gt=0, description="longest silence once text flows")
    total: float = Field(300.0, gt=0, description="seconds for the whole answer")


def key_from_env(owner: str, env: str | None) -> str | None:
    """The secret in the environment variable a provider or embedder names, read when used."""
    if not env:
        return None
    value = os.environ.get(env)
    if value is None:
        raise ConfigError(f"{owner}: environment variable {env} is not set")
    return value


class ProviderConfig(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    type: Literal["openai", "anthropic", "dify", "local"]
    base_url: str | None = None
    api_key_env: str | None = None
    stream: bool = True
    model: str | None = Field(
        None,
        description="the model asked of this engine when it stands in for an assistant's own "
        "engine (a fallback, or the private engine for personal data); an assistant's `model` "
        "names its own engine's",
    )
    timeouts: Timeouts = Timeouts()
    retries: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    # local only
    model_path: str | None = None
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = None
    max_concurrency: int = Field(1, ge=1)
    queue_timeout: float = Field(
        10.0, gt=0, description="seconds a request may wait for the engine"
    )
    # dify only: which Service API the app offers (a chat app keeps its own conversations)
    dify_app_type: Literal["chat", "completion"] = "chat"
    # anthropic only: the `anthropic-version` header
    anthropic_version: str = "2023-06-01"

    @model_validator(mode="after")
    def _remote_needs_url(self) -> ProviderConfig:
        if self.type != "local" and not self.base_url:
            raise ValueError(f"provider {self.id!r} of type {self.type} needs a base_url")
        return self

    def api_key(self) -> str | None:
        return key_from_env(f"provider {self.id!r}", self.api_key_env)


DEFAULT_PROVIDERS = [ProviderConfig(id="local", type="local")]


class EmbedderTimeouts(BaseModel):
    connect: float = Field(5.0, gt=0, description="seconds to open the connection")
    total: float = Field(60.0, gt=0, description="seconds for one batch's whole answer")


class EmbedderConfig(BaseModel):
    """An embedding model: the bundled one (`local`) or an OpenAI-compatible `/v1/embeddings`."""

    id: str = Field(pattern=ID_PATTERN)
    type: Literal["local", "openai"]
    base_url: str | None = Field(None, description="openai: e.g. https://api.openai.com/v1")
    api_key_env: str | None = None
    model: str | None = Field(
        None, description="openai: the model asked for; local: multilingual-e5-small (default)"
    )
    dimension: int | None = Field(
        None,
        ge=1,
        description="openai: checked against each answer; unset = learned from the first",
    )
    batch_size: int = Field(64, ge=1, le=2048, description="texts sent in one request")
    timeouts: EmbedderTimeouts = EmbedderTimeouts()
    threads: int | None = Field(None, ge=1, description="local: inference threads (OpenMP)")
    score_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the score_threshold of a knowledge base created on this embedder without "
        "one; unset: 0.82 for local, 0 for openai (scores depend on the model)",
    )

    @model_validator(mode="after")
    def _remote_needs_url_and_model(self) -> EmbedderConfig:
        if self.type == "openai" and not (self.base_url and self.model):
            raise ValueError(f"embedder {self.id!r} of type openai needs a base_url and a model")
        return self

    def api_key(self) -> str | None:
        return key_from_env(f"embedder {self.id!r}", self.api_key_env)


DEFAULT_EMBEDDERS = [EmbedderConfig(id="local", type="local")]
