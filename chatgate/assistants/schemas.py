from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from chatgate.core.config import ID_PATTERN, AssistantConfig, OnDisconnect
from chatgate.core.policies import GuardPolicy, HandoffPolicy
from chatgate.core.text import UnicodeText


class Assistant(AssistantConfig):
    """An assistant as it is now: its configuration plus its version and whether it is on."""

    enabled: bool = True
    version: int = 1


class AssistantOut(BaseModel):
    id: str
    name: str
    description: str
    provider: str
    model: str

    @classmethod
    def of(cls, assistant: AssistantConfig) -> AssistantOut:
        return cls(
            id=assistant.id,
            name=assistant.name,
            description=assistant.description,
            provider=assistant.provider,
            model=assistant.model,
        )


class AssistantList(BaseModel):
    data: list[AssistantOut]


class AssistantCreate(AssistantConfig):
    id: str = Field(pattern=ID_PATTERN)
    # A client's free text: no lone surrogates (see core/text.py).
    description: UnicodeText = ""
    model: UnicodeText
    system_prompt: UnicodeText = ""
    fallback_answer: UnicodeText | None = None


class AssistantUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: UnicodeText | None = None
    provider: str | None = None
    model: str | None = Field(None, min_length=1, max_length=200)
    system_prompt: UnicodeText | None = None
    max_context_tokens: int | None = Field(None, ge=64)
    max_answer_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    fallback_providers: list[str] | None = None
    fallback_answer: UnicodeText | None = None
    cache_answers: bool | None = None
    guards: GuardPolicy | None = None
    knowledge_bases: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = None
    retention_days: int | None = Field(None, ge=1)
    stream_on_disconnect: OnDisconnect | None = None
    handoff: HandoffPolicy | None = None
    enabled: bool | None = None


class AssistantAdminOut(Assistant):
    created_at: datetime
    updated_at: datetime


class AssistantAdminList(BaseModel):
    data: list[AssistantAdminOut]


class VersionOut(BaseModel):
    version: int
    config: dict[str, Any]
    user_id: str | None
    created_at: datetime


class VersionList(BaseModel):
    data: list[VersionOut]


class RollbackRequest(BaseModel):
    version: int = Field(ge=1)


class TryRequest(BaseModel):
    question: UnicodeText = Field(min_length=1, max_length=20_000)
    draft: AssistantUpdate = Field(default_factory=AssistantUpdate)


class TriedError(BaseModel):
    code: str
    message: str


class TriedAnswer(BaseModel):
    """One side of a try: the answer, or the error that side ended with."""

    answer: str | None = None
    model: str | None = None
    engine: str | None = None
    usage: dict[str, int] | None = None
    error: TriedError | None = None


class TryResult(BaseModel):
    live: TriedAnswer
    draft: TriedAnswer
