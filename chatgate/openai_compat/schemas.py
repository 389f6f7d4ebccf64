"""OpenAI's chat-completions request, in full: messages of every role with their content parts
and tool calls, tools, structured output and the sampling parameters.

Parameters that change what the model writes and that chatgate cannot pass on are refused by
name (`REFUSED`); the few that only describe the request (`metadata`, `store`, `service_tier`…)
are accepted and ignored, as an OpenAI-compatible server does."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TextPartIn(BaseModel):
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePartIn(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(BaseModel):
    data: str = Field(min_length=1)
    format: Literal["wav", "mp3"]


class AudioPartIn(BaseModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


class RefusalPartIn(BaseModel):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[TextPartIn | ImagePartIn | AudioPartIn, Field(discriminator="type")]
AssistantPart = Annotated[TextPartIn | RefusalPartIn, Field(discriminator="type")]


class FunctionCallIn(BaseModel):
    name: str = Field(min_length=1)
    arguments: str


class ToolCallIn(BaseModel):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. `name`, which engines may not take


class SystemMessage(_Message):
    role: Literal["system", "developer"]
    content: str | list[TextPartIn]


class UserMessage(_Message):
    role: Literal["user"]
    content: str | list[UserPart]


class AssistantMessage(_Message):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    refusal: str | None = None


class ToolMessage(_Message):
    role: Literal["tool"]
    content: str | list[TextPartIn]
    tool_call_id: str = Field(min_length=1)


ChatMessageIn = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


class FunctionIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(BaseModel):
    type: Literal["function"]
    function: FunctionIn


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextFormat(BaseModel):
    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    type: Literal["json_object"]


class JsonSchemaFormat(BaseModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaIn


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


class StreamOptions(BaseModel):
    include_usage: bool = False


# Parameters of OpenAI's API that change the answer and that no chatgate engine takes.
REFUSED = ("functions", "function_call", "logit_bias", "audio", "prediction", "web_search_options")


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # checked against REFUSED, then ignored

    model: str = Field(min_length=1)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    user: str | None = Field(None, max_length=255)
    tools: list[ToolIn] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    n: int = Field(1, ge=1, le=8)
    modalities: list[Literal["text"]] | None = None  # audio answers: no engine here gives them

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop takes at most 4 sequences")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        called: set[str] = set()
        for message in self.messages:
            if isinstance(message, AssistantMessage):
                called.update(call.id for call in message.tool_calls or ())
            elif isinstance(message, ToolMessage) and message.tool_call_id not in called:
                # As OpenAI: a tool message answers a call of an earlier assistant message.
                raise ValueError("a tool message must answer a tool call made before it")
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {tool.function.name for tool in self.tools or ()}
            if (name := self.tool_choice.function.name) not in names:
                raise ValueError(f"tool_choice names {name!r}, which is not one of the tools")
        return self

    def refused(self) -> str | None:
        """The first parameter sent that chatgate refuses by name."""
        extra = self.model_extra or {}
        return next((name for name in REFUSED if extra.get(name) is not None), None)
