"""Builds one provider per configured engine at start-up and closes them at shutdown.

Each engine is wrapped in its resilience (see resilient.py); an assistant gets its fallback chain.
"""

from __future__ import annotations

import importlib
import random
from itertools import zip_longest
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from chatgate.core.config import AssistantConfig, ProviderConfig
from chatgate.core.errors import ServiceUnavailable
from chatgate.providers.base import Provider
from chatgate.providers.breaker import (
    BreakerStore,
    CircuitBreaker,
    LocalBreakerStore,
)
from chatgate.providers.breaker_redis import RedisBreakerStore
from chatgate.providers.fallback import ChainSpec, FallbackChain
from chatgate.providers.observed import ObservedProvider
from chatgate.providers.resilient import BreakerProvider, RetryingProvider

if TYPE_CHECKING:
    from chatgate.usage.ledger import Ledger

# type -> (module, class); imported on use, so llama.cpp loads only when a local engine is set.
PROVIDER_CLASSES = {
    "local": ("chatgate.providers.local", "LocalProvider"),
    "openai": ("chatgate.providers.openai", "OpenAIProvider"),
    "anthropic": ("chatgate.providers.anthropic", "AnthropicProvider"),
    "dify": ("chatgate.providers.dify", "DifyProvider"),
}


def build_provider(
    config: ProviderConfig,
    *,
    breakers: BreakerStore,
    rng: random.Random | None = None,
    ledger: Ledger | None = None,
) -> Provider:
    """The engine, its retries, its call metrics and usage, and its circuit breaker, outermost
    last."""
    module, name = PROVIDER_CLASSES[config.type]
    provider: Provider = getattr(importlib.import_module(module), name)(config)
    retrying = RetryingProvider(provider, config, rng=rng or random.Random())
    breaker = CircuitBreaker.for_provider(config, breakers)
    return BreakerProvider(ObservedProvider(retrying, ledger=ledger), breaker)


class ProviderRegistry:
    def __init__(
        self,
        configs: list[ProviderConfig],
        *,
        redis: Redis | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        """`ledger`: where every engine call's usage is noted (none: not noted)."""
        # With Redis every process shares each engine's breaker; otherwise it is this process's.
        self.breakers: BreakerStore = (
            RedisBreakerStore(redis) if redis is not None else LocalBreakerStore()
        )
        rng = random.Random()
        self._configs = {config.id: config for config in configs}
        self._providers = {
            config.id: build_provider(config, breakers=self.breakers, rng=rng, ledger=ledger)
            for config in configs
        }

    def get(self, provider_id: str) -> Provider:
        try:
            return self._providers[provider_id]
        except KeyError:
            raise ServiceUnavailable(
                f"engine {provider_id!r} is not configured", code="provider_not_configured"
            ) from None

    def for_assistant(self, assistant: AssistantConfig, *, private: bool = False) -> Provider:
        """The engine an assistant's answer comes from: its fallback chain (its engine, its
        fallback engines, its canned answer). `private` picks the engine that may see personal
        data (its guard policy's private_provider), with no fallback to any other engine."""
        if private:
            engine = assistant.guards.private_provider or assistant.provider
            providers: tuple[str, ...] = (engine,)
        else:
            providers = (assistant.provider, *assistant.fallback_providers)
        # The assistant's model is its own engine's; another engine is asked for its own.
        models = tuple(
            None if engine == assistant.provider else self._model_of(engine) for engine in providers
        )
        return self.chain(ChainSpec(providers, assistant.fallback_answer, models))

    def chain(self, spec: ChainSpec) -> FallbackChain:
        """A chain by name (each engine once, in order), e.g. for a queue worker."""
        models: dict[str, str | None] = {}
        for engine, model in zip_longest(spec.providers, spec.models[: len(spec.providers)]):
            models.setdefault(engine, model)  # an engine named twice keeps its first place
        return FallbackChain(
            [self.get(engine) for engine in models],
            fallback_answer=spec.fallback_answer,
            models=list(models.values()),
        )

    def _model_of(self, provider_id: str) -> str | None:
        config = self._configs.get(provider_id)
        return config.model if config is not None else None

    async def start(self) -> None:
        for provider in self._providers.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
