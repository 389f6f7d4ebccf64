"""The protection settings: per engine (retries, breaker), per assistant (guards, fallbacks,
cache) and for the whole gateway (rate limits, answer cache, who may connect)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

PiiKind = Literal["cn_mobile", "cn_resident_id", "bank_card", "email", "intl_phone"]
ALL_PII_KINDS: list[PiiKind] = ["cn_mobile", "cn_resident_id", "bank_card", "email", "intl_phone"]


class RetryPolicy(BaseModel):
    """Retries happen only before an engine's first byte: never twice the same text."""

    attempts: int = Field(2, ge=0, le=10, description="retries after the first try")
    backoff: float = Field(0.2, ge=0, description="seconds before the first retry, doubling")
    max_backoff: float = Field(2.0, ge=0, description="the longest wait between tries")


class BreakerPolicy(BaseModel):
    """Closed → open after `failures` failed calls in a row; open for `open_seconds`; then
    half-open lets `half_open_probes` calls through to decide."""

    enabled: bool = True
    failures: int = Field(5, ge=1)
    open_seconds: float = Field(15.0, gt=0)
    half_open_probes: int = Field(1, ge=1)


class GuardPolicy(BaseModel):
    pii: Literal["off", "block", "mask", "route"] = "off"
    pii_kinds: list[PiiKind] = Field(default_factory=lambda: list(ALL_PII_KINDS))
    private_provider: str | None = Field(
        None, description="with pii=route: the engine that may see personal data"
    )
    injection: Literal["off", "flag", "block"] = "off"


def seeded_guards(provider_type: str) -> GuardPolicy:
    """The guards of an assistant whose configuration (YAML or admin API) names none: personal
    data masked and injection flagged when its engine is outside the deployment, off for the
    bundled local model, which sends nothing anywhere."""
    if provider_type == "local":
        return GuardPolicy()
    return GuardPolicy(pii="mask", injection="flag")


class RateLimitSettings(BaseModel):
    enabled: bool = True
    requests_per_minute: int = Field(120, ge=1, description="per user or API key")
    ip_requests_per_minute: int = Field(600, ge=1, description="per client address")
    tokens_per_minute: int = Field(
        100_000, ge=1, description="per user and assistant (prompt and answer tokens)"
    )
    on_redis_error: Literal["open", "closed"] = Field(
        "open", description="when Redis is unreachable: let requests through, or refuse them"
    )


class CacheSettings(BaseModel):
    enabled: bool = True
    ttl_seconds: int = Field(600, ge=1)
    max_entries: int = Field(10_000, ge=1, description="in-process only; Redis uses the TTL")


class AccessSettings(BaseModel):
    allowed_cidrs: list[str] = Field(
        default_factory=list, description="client networks allowed in; empty allows all"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="proxies whose X-Forwarded-For is believed"
    )
    hsts_behind_proxy: bool = Field(
        False, description="TLS ends at a trusted proxy: send HSTS on what it forwards with "
        "X-Forwarded-Proto: https",
    )  # fmt: skip

    @model_validator(mode="after")
    def _hsts_needs_a_proxy(self) -> AccessSettings:
        if self.hsts_behind_proxy and not self.trusted_proxies:
            raise ValueError(
                "hsts_behind_proxy believes X-Forwarded-Proto from trusted proxies only: "
                "set CHATGATE_ACCESS__TRUSTED_PROXIES too"
            )
        return self


# What the user is told when a conversation goes to a person.
HANDOFF_MESSAGE = "A person will answer you here shortly. 已为您转接人工客服，请稍候。"


class HandoffPolicy(BaseModel):
    """When an assistant's conversation goes to a person (handoff/), and who is told."""

    on_request: bool = Field(False, description="the user asks for a person (English or Chinese)")
    on_engine_failure: bool = Field(
        False, description="the engine chain failed, or fell through to the canned answer"
    )
    on_guard_blocks: int | None = Field(
        None, ge=1, description="a guard blocked the user this many times in the session"
    )
    webhook_url: str | None = Field(
        None, max_length=2000, pattern=r"^https?://[^\s]+$",
        description="POSTed a signed `handoff.requested` event (needs the webhook secret)",
    )  # fmt: skip
    message: str = Field(
        HANDOFF_MESSAGE, min_length=1, max_length=2000, pattern=r"^[^\x00]*$",
        description="what the user is told",
    )  # fmt: skip
