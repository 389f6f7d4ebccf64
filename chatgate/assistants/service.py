"""The assistants a caller can talk to, seeded from configuration."""

from __future__ import annotations

from chatgate.core.config import AssistantConfig
from chatgate.core.errors import NotFound


class AssistantCatalog:
    def __init__(self, assistants: list[AssistantConfig]) -> None:
        self._by_id = {assistant.id: assistant for assistant in assistants}

    def all(self) -> list[AssistantConfig]:
        return list(self._by_id.values())

    def get(self, assistant_id: str) -> AssistantConfig:
        try:
            return self._by_id[assistant_id]
        except KeyError:
            raise NotFound(
                f"assistant {assistant_id!r} does not exist", code="assistant_not_found"
            ) from None
