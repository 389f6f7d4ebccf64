"""Builds one provider per configured engine at start-up and closes them at shutdown."""

from __future__ import annotations

from chatgate.core.config import ProviderConfig
from chatgate.core.errors import ServiceUnavailable
from chatgate.providers.base import Provider


def build_provider(config: ProviderConfig) -> Provider:
    if config.type == "local":
        from chatgate.providers.local import LocalProvider

        return LocalProvider(config)
    from chatgate.providers.openai import OpenAIProvider

    return OpenAIProvider(config)


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

    async def start(self) -> None:
        for provider in self._providers.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
