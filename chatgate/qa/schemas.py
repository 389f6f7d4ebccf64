from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from chatgate.chat.schemas import INPUTS_DESCRIPTION, Citation, DifyInputs


class Question(BaseModel):
    question: str
    user_id: str | None = Field(None, min_length=1, max_length=255)
    session_id: uuid.UUID | None = None
    assistant_id: str | None = Field(None, min_length=1, max_length=64)
    inputs: DifyInputs = Field(default_factory=dict, description=INPUTS_DESCRIPTION)


class Answer(BaseModel):
    answer: str
    trace_id: str
    session_id: str
    cached: bool = Field(False, description="given from the answer cache, not by an engine")
    citations: list[Citation] | None = Field(
        None,
        description="the knowledge-base passages the answer was given (a Dify app's retriever "
        "resources); null for an assistant without knowledge bases",
    )
