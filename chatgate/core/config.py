"""One typed settings tree: environment variables (`CHATGATE_*`) over an optional YAML file."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from chatgate.core.engine_config import (
    DEFAULT_EMBEDDERS,
    DEFAULT_PROVIDERS,
    ID_PATTERN,
    ConfigError,
    EmbedderConfig,
    ProviderConfig,
)
from chatgate.core.policies import (
    AccessSettings,
    CacheSettings,
    GuardPolicy,
    HandoffPolicy,
    RateLimitSettings,
    seeded_guards,
)

# What a streamed answer does when its client goes away (`stream_on_disconnect`).
OnDisconnect = Literal["continue", "stop"]


class AssistantConfig(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    provider: str
    model: str
    system_prompt: str = ""
    max_context_tokens: int = Field(2048, ge=64)
    max_answer_tokens: int = Field(512, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    fallback_providers: list[str] = Field(
        default_factory=list, description="engines tried in turn when the first one fails"
    )
    fallback_answer: str | None = Field(
        None,
        description="the canned answer when every engine failed, e.g. 当前系统繁忙，请稍后再试",
    )
    cache_answers: bool = True
    guards: GuardPolicy = Field(
        default_factory=GuardPolicy,
        description="unnamed: seeded by the engine's type (see `seeded_guards`); named: exactly "
        "as given, unnamed guards off",
    )
    knowledge_bases: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        default_factory=list, description="ids of the knowledge bases it answers from"
    )
    retention_days: int | None = Field(
        None, ge=1, description="days a conversation is kept after its last activity, then "
        "erased; unset = the global retention_days",
    )  # fmt: skip
    stream_on_disconnect: OnDisconnect | None = Field(
        None, description="when a streaming client goes away: the answer goes on and is stored "
        "whole (continue), or ends there (stop); unset = the global stream_on_disconnect",
    )  # fmt: skip
    handoff: HandoffPolicy | None = Field(
        None, description="when a conversation goes to a person (handoff/); unset = never"
    )

    @model_validator(mode="after")
    def _answer_fits(self) -> AssistantConfig:
        if self.max_answer_tokens >= self.max_context_tokens:
            raise ValueError(
                f"assistant {self.id!r}: max_answer_tokens must be below max_context_tokens"
            )
        return self


class KnowledgeSettings(BaseModel):
    """Knowledge bases: upload size and the chunking a new knowledge base starts with."""

    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="largest document accepted for upload (413 above)"
    )
    chunk_size: int = Field(500, ge=16, le=8192, description="tokens per chunk, by default")
    chunk_overlap: int = Field(50, ge=0, description="tokens of whole sentences repeated")
    top_k: int = Field(5, ge=1, le=100, description="passages retrieved per question")
    embed_batch: int = Field(32, ge=1, le=2048, description="chunks per call to the embedder")

    @model_validator(mode="after")
    def _overlap_fits(self) -> KnowledgeSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("knowledge.chunk_overlap must be below knowledge.chunk_size")
        return self


class PriceConfig(BaseModel):
    """A model's price (YAML `prices:`), in the deployment's currency per million tokens."""

    input_per_million: float = Field(ge=0, le=1_000_000)
    output_per_million: float = Field(ge=0, le=1_000_000)


# What the bundled assistants answer when their engine fails (busy, missing model file, …).
BUSY_ANSWER = (
    "The assistant is busy right now; please try again shortly. 当前系统繁忙，请稍后再试。"
)
DEFAULT_ASSISTANTS = [
    AssistantConfig(
        id="helper",
        name="General helper",
        description="A friendly assistant for everyday questions.",
        provider="local",
        model="smollm2-135m-instruct",
        system_prompt="You are a helpful, concise assistant. Answer clearly in a few sentences.",
        max_context_tokens=1536,
        max_answer_tokens=256,
        temperature=0.3,
        fallback_answer=BUSY_ANSWER,
    ),
    AssistantConfig(
        id="support",
        name="Customer support",
        description="Answers questions about orders, shipping and returns.",
        provider="local",
        model="smollm2-135m-instruct",
        system_prompt=(
            "You are a polite customer-service agent for an online shop. You help with orders, "
            "shipping, returns and refunds. Keep answers short and ask for the order number "
            "when you need it."
        ),
        max_context_tokens=1536,
        max_answer_tokens=256,
        temperature=0.3,
        fallback_answer=BUSY_ANSWER,
    ),
]


class _YamlSource(PydanticBaseSettingsSource):
    """The YAML file named by `CHATGATE_CONFIG`; environment variables win over it."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("CHATGATE_CONFIG")
        if not path:
            return {}
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATGATE_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = "sqlite+aiosqlite:///./data/chatgate.db"
    database_pool_size: int = Field(10, ge=1)
    redis_url: str | None = None
    encryption_enabled: bool = Field(
        True, description="seal message text, titles and citations at rest (AES-256-GCM, a key "
        "per user); false stores them in the clear",
    )  # fmt: skip
    encryption_keys: SecretStr | None = Field(
        None, description="comma-separated key_id:base64(32 bytes), newest first; unset on the "
        "embedded default: a key file (encryption_key_file) is made on first start",
    )  # fmt: skip
    encryption_key_file: str = Field(
        "data/encryption.keys", description="the embedded default's keys, owner-only permissions"
    )
    retention_days: int | None = Field(
        None, ge=1, description="days a conversation is kept after its last activity, then "
        "erased (an assistant's own retention_days wins); unset = kept until deleted",
    )  # fmt: skip
    retention_every_minutes: float = Field(
        60.0, gt=0, description="how often one process of the deployment erases expired ones"
    )
    retention_batch: int = Field(200, ge=1, le=10_000, description="conversations per transaction")
    retention_max_seconds: float = Field(
        30.0, gt=0, description="a run stops after this long; the next run goes on"
    )
    task_queue: str = Field("chatgate:queue", description="Redis queue of async answers")
    worker_concurrency: int = Field(8, ge=1, description="answers one worker writes at once")
    auth_mode: Literal["none", "jwt"] = "none"
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = Field(
        None, description="the `aud` chatgate's tokens must carry; required in auth mode jwt"
    )
    jwt_verify_audience: bool = Field(
        True, description="false accepts tokens made for any audience (another application of "
        "the same identity provider included): only for a provider that cannot set `aud`",
    )  # fmt: skip
    jwt_issuer: str | None = Field(None, description="the `iss` tokens must carry; unset = any")
    jwks_refresh_seconds: float = Field(
        300.0, ge=1, description="how often the JWKS is fetched again, so a withdrawn key stops "
        "being trusted",
    )  # fmt: skip
    max_content_chars: int = Field(32_000, ge=1, description="longest message text accepted")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body, refused (413) before it is "
        "read; a route that needs more says so in gateway/bodies.py",
    )  # fmt: skip
    stream_flush_seconds: float = Field(
        1.0, gt=0, description="how often a streaming answer's text is saved while it grows"
    )
    stream_on_disconnect: OnDisconnect = Field(
        "continue", description="when a streaming client goes away: the answer goes on and can "
        "be resumed (continue), or ends `interrupted` (stop); an assistant may say otherwise",
    )  # fmt: skip
    stream_log_keep_seconds: float = Field(
        600, ge=0, description="how long an answer's event log is kept after the answer ends, "
        "for clients resuming it; the stored answer is replayed after that",
    )  # fmt: skip
    drain_grace_seconds: float = Field(
        25, ge=0, description="on SIGTERM: how long running answers may go on before they end "
        "`interrupted`; /ready is 503 from the signal on",
    )  # fmt: skip
    keep_alive_seconds: float = Field(
        75, gt=0, description="idle keep-alive of a client connection: longer than a load "
        "balancer's own (60 s for most), so the balancer closes first",
    )  # fmt: skip
    default_assistant: str | None = Field(
        None, description="the assistant of /v1/qa when none is named; the first one if unset"
    )
    rate_limits: RateLimitSettings = RateLimitSettings()
    cache: CacheSettings = CacheSettings()
    access: AccessSettings = AccessSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    handoff_webhook_secret: SecretStr | None = Field(
        None, description="signs hand-off webhooks (HMAC-SHA256); unset = none is sent"
    )
    handoff_webhook_backoff_seconds: float = Field(
        1.0, gt=0, le=60, description="a failed hand-off webhook is tried again after this, "
        "doubling (with jitter), 5 tries in all",
    )  # fmt: skip
    log_level: str = "INFO"
    ssl_certfile: str | None = Field(
        None, description="PEM certificate (chain) `chatgate serve` offers over TLS, with "
        "ssl_keyfile; unset = plain HTTP (TLS at a reverse proxy)",
    )  # fmt: skip
    ssl_keyfile: str | None = Field(None, description="PEM private key of ssl_certfile")
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector for OpenTelemetry spans (e.g. http://collector:4318); "
        "unset = no spans. OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT is read too",
        validation_alias=AliasChoices(
            "otlp_endpoint", "CHATGATE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    trace_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="share of new traces sampled; a caller's traceparent decides "
        "for its own",
    )  # fmt: skip
    providers: list[ProviderConfig] = Field(default_factory=lambda: list(DEFAULT_PROVIDERS))
    assistants: list[AssistantConfig] = Field(default_factory=lambda: list(DEFAULT_ASSISTANTS))
    embedders: list[EmbedderConfig] = Field(default_factory=lambda: list(DEFAULT_EMBEDDERS))
    default_embedder: str | None = Field(
        None, description="the embedder of a new knowledge base when none is named; first if unset"
    )
    prices: dict[Annotated[str, Field(min_length=1, max_length=200)], PriceConfig] = Field(
        default_factory=dict, description="price per model, seeding the usage ledger's table "
        "once (an admin's change through /v1/admin/prices is never overwritten)",
    )  # fmt: skip
    usage_write_seconds: float = Field(
        1.0, gt=0, le=600, description="how often each process writes the usage it recorded "
        "(at once when 500 calls wait, and whatever is left when it stops)",
    )  # fmt: skip

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)

    @field_validator("jwt_secret")
    @classmethod
    def _secret_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("CHATGATE_JWT_SECRET must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.auth_mode == "jwt" and not (self.jwt_secret or self.jwt_jwks_url):
            raise ValueError("auth mode jwt needs CHATGATE_JWT_SECRET or CHATGATE_JWT_JWKS_URL")
        if self.auth_mode == "jwt" and self.jwt_verify_audience and not self.jwt_audience:
            raise ValueError(
                "auth mode jwt needs CHATGATE_JWT_AUDIENCE (the `aud` your identity provider "
                "puts in tokens meant for chatgate), or CHATGATE_JWT_VERIFY_AUDIENCE=false to "
                "accept tokens made for any application"
            )
        if self.jwt_audience and not self.jwt_verify_audience:
            raise ValueError(
                "CHATGATE_JWT_AUDIENCE is set but CHATGATE_JWT_VERIFY_AUDIENCE is false: choose one"
            )
        provider_ids = [p.id for p in self.providers]
        if len(set(provider_ids)) != len(provider_ids):
            raise ValueError("provider ids must be unique")
        self.assistants = [with_seeded_guards(a, self.providers) for a in self.assistants]
        assistant_ids = [a.id for a in self.assistants]
        if len(set(assistant_ids)) != len(assistant_ids):
            raise ValueError("assistant ids must be unique")
        for assistant in self.assistants:
            named = [assistant.provider, *assistant.fallback_providers]
            if assistant.guards.private_provider:
                named.append(assistant.guards.private_provider)
            for provider in named:
                if provider not in provider_ids:
                    raise ValueError(
                        f"assistant {assistant.id!r} names unknown provider {provider!r}"
                    )
        if not self.assistants:
            raise ValueError("at least one assistant is needed")
        if self.default_assistant and self.default_assistant not in assistant_ids:
            raise ValueError(f"default_assistant {self.default_assistant!r} is not an assistant")
        embedder_ids = [e.id for e in self.embedders]
        if not embedder_ids or len(set(embedder_ids)) != len(embedder_ids):
            raise ValueError("embedder ids must be unique, and at least one is needed")
        if self.default_embedder and self.default_embedder not in embedder_ids:
            raise ValueError(f"default_embedder {self.default_embedder!r} is not an embedder")
        return self

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def with_seeded_guards(
    assistant: AssistantConfig, providers: list[ProviderConfig]
) -> AssistantConfig:
    """The assistant with the guards its engine's type seeds, unless it names its own."""
    if "guards" in assistant.model_fields_set:
        return assistant
    types = {p.id: p.type for p in providers}
    if assistant.provider not in types:
        return assistant  # refused as an unknown provider below
    return assistant.model_copy(update={"guards": seeded_guards(types[assistant.provider])})


def load_settings() -> Settings:
    """Read and validate settings, turning validation failures into one readable ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from exc
