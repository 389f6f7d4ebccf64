from pydantic import BaseModel

from chatgate.core.config import AssistantConfig


class AssistantOut(BaseModel):
    id: str
    name: str
    description: str
    provider: str
    model: str

    @classmethod
    def of(cls, assistant: AssistantConfig) -> "AssistantOut":
        return cls(
            id=assistant.id,
            name=assistant.name,
            description=assistant.description,
            provider=assistant.provider,
            model=assistant.model,
        )


class AssistantList(BaseModel):
    data: list[AssistantOut]
