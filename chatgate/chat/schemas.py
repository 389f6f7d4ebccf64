from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

from chatgate.chat.models import ChatSession, Message, MessageRole, MessageStatus
from chatgate.core.text import UnicodeText
from chatgate.handoff.models import Handoff, HandoffReason, HandoffStatus

ResponseMode = Literal["blocking", "streaming", "async"]
# PostgreSQL text cannot hold U+0000, so no backend accepts it.
NO_NUL = r"^[^\x00]*$"


class SessionCreate(BaseModel):
    assistant_id: str = Field(min_length=1, max_length=64)
    id: uuid.UUID | None = Field(None, description="client-made id; makes creation idempotent")
    title: str | None = Field(None, max_length=200, pattern=NO_NUL)


class SessionUpdate(BaseModel):
    title: str = Field(max_length=200, pattern=NO_NUL)


class HandoffState(BaseModel):
    """Where a session's hand-off to a person is (handoff/): while `waiting` or `with_agent`,
    a person answers it, not the assistant."""

    status: HandoffStatus
    reason: HandoffReason

    @classmethod
    def of(cls, handoff: Handoff | None) -> HandoffState | None:
        return None if handoff is None else cls(status=handoff.status, reason=handoff.reason)


class SessionOut(BaseModel):
    id: str
    assistant_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    handoff: HandoffState | None = Field(
        None, description="its hand-off to a person; null when it never had one"
    )

    @classmethod
    def of(cls, session: ChatSession, handoff: Handoff | None = None) -> SessionOut:
        return cls(
            id=str(session.id),
            assistant_id=session.assistant_id,
            title=session.title,
            created_at=session.created_at,
            updated_at=session.updated_at,
            message_count=session.message_count,
            handoff=HandoffState.of(handoff),
        )


class SessionPage(BaseModel):
    data: list[SessionOut]
    has_more: bool
    next_cursor: str | None


class SwitchAssistant(BaseModel):
    assistant_id: str = Field(min_length=1, max_length=64)


class SwitchResult(BaseModel):
    session: SessionOut
    created: bool


class Citation(BaseModel):
    """A passage an answer was given: `index` is its number [n] in the engine's prompt."""

    index: int
    document_id: str = Field(description="a UUID; a Dify app's own document id as it gives it")
    document_name: str
    chunk_id: str = Field(description="a UUID; a Dify app's segment id as it gives it")
    page: int | None = None
    score: float
    text: str


class ToolCallOut(BaseModel):
    """A call an answer made of one of the client's tools (OpenAI's Responses API)."""

    id: str = Field(description="the call's id, which the tool message answering it names")
    name: str
    arguments: str = Field(description="JSON text, as the model wrote it")


class MessageOut(BaseModel):
    id: str
    session_id: str
    role: MessageRole
    content: str
    status: MessageStatus
    created_at: datetime
    model: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cached: bool = Field(False, description="given from the answer cache, not by an engine")
    provider: str | None = Field(
        None, description="the engine that wrote the answer; null for the canned answer"
    )
    fallback: bool = Field(
        False, description="answered by a fallback engine or the canned answer, not the usual one"
    )
    citations: list[Citation] | None = Field(
        None,
        description="the knowledge-base passages the answer was given (or a Dify app's retriever "
        "resources); null for an assistant without knowledge bases",
    )
    tool_calls: list[ToolCallOut] | None = Field(
        None, description="an answer's calls of the client's tools; null when it made none"
    )
    tool_call_id: str | None = Field(
        None, description="for a tool message: the call whose result it is"
    )

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return cls(
            id=str(message.id),
            session_id=str(message.session_id),
            role=message.role,
            content=message.content,
            status=message.status,
            created_at=message.created_at,
            model=message.model,
            usage=message.usage,
            error=message.error,
            cached=bool(message.cached),
            provider=message.provider,
            fallback=bool(message.fallback),
            citations=None if message.citations is None
            else [Citation.model_validate(c) for c in message.citations],
            tool_calls=None if message.tool_calls is None
            else [ToolCallOut.model_validate(c) for c in message.tool_calls],
            tool_call_id=message.tool_call_id,
        )  # fmt: skip


class HistoryPage(BaseModel):
    session_id: str
    data: list[MessageOut]
    has_more: bool
    next_before: str | None


class HistoryAppend(BaseModel):
    session_id: uuid.UUID
    # A tool message answers a call, which only the Responses API records.
    role: Literal["user", "assistant", "system"]
    content: str


# A Dify app's input variables (text, paragraph, select, number), forwarded to Dify engines only.
# Numbers stay within what JSON encoders take (orjson: 64-bit integers, finite floats): a larger
# integer is taken as a float, infinity and NaN are refused.
_Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
_Finite = Annotated[float, Field(allow_inf_nan=False)]


def _reported_whole(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A bad value is reported for `inputs` as a whole: an error's location would otherwise name
    the value's key, which is the client's own text, in the answer and wherever it is logged."""
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "invalid_inputs",
            "inputs map names to strings, finite numbers, booleans or null",
        ) from None


DifyInputs = Annotated[
    dict[UnicodeText, UnicodeText | _Int64 | _Finite | bool | None], WrapValidator(_reported_whole)
]
INPUTS_DESCRIPTION = (
    "values for a Dify app's input variables, sent to Dify engines only (others ignore them); "
    "a message with inputs is not answered from the cache"
)


class SendMessage(BaseModel):
    content: str
    response_mode: ResponseMode = "blocking"
    inputs: DifyInputs = Field(default_factory=dict, description=INPUTS_DESCRIPTION)


class SendResult(BaseModel):
    user_message: MessageOut
    message: MessageOut | None = Field(
        description="the answer; null when a person has the conversation (see `handoff`)"
    )
    handoff: HandoffState | None = Field(
        None, description="set when the message went to a person instead of the assistant"
    )


class StopResult(BaseModel):
    stopped: bool
    message: MessageOut | None = None
