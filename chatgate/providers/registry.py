"""Builds one provider per configured engine at start-up and closes them at shutdown."""

from __future__ import annotations

import importlib

from chatgate.core.config import AssistantConfig, ProviderConfig
from chatgate.core.errors import ServiceUnavailable
from chatgate.providers.base import Provider
from chatgate.providers.observed import ObservedProvider

# type -> (module, class); imported on use, so llama.cpp loads only when a local engine is set.
PROVIDER_CLASSES = {
    "local": ("chatgate.providers.local", "LocalProvider"),
    "openai": ("chatgate.providers.openai", "OpenAIProvider"),
    "anthropic": ("chatgate.providers.anthropic", "AnthropicProvider"),
    "dify": ("chatgate.providers.dify", "DifyProvider"),
}


def build_provider(config: ProviderConfig) -> Provider:
    module, name = PROVIDER_CLASSES[config.type]
    provider: Provider = getattr(importlib.import_module(module), name)(config)
    return ObservedProvider(provider)


class ProviderRegistry:
    def __init__(self, configs: list[ProviderConfig]) -> None:
        self._providers = {config.id: build_provider(config) for config in configs}

    def get(self, provider_id: str) -> Provider:
        try:
            return self._providers[provider_id]
        except KeyError:
            raise ServiceUnavailable(
                f"engine {provider_id!r} is not configured", code="provider_not_configured"
            ) from None

    def for_assistant(self, assistant: AssistantConfig, *, private: bool = False) -> Provider:
        """The engine an assistant's answer comes from; `private` picks the engine that may see
        personal data (its guard policy's private_provider)."""
        if private and assistant.guards.private_provider:
            return self.get(assistant.guards.private_provider)
        return self.get(assistant.provider)

    async def start(self) -> None:
        for provider in self._providers.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
