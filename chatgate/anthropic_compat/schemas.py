"""Anthropic's Messages request (`POST /v1/messages`), as its SDK sends it: a top-level system,
user and assistant messages of content blocks (text, images, tool calls and their results),
tools with their input schemas, tool_choice, and the sampling parameters.

A block or a tool of a kind chatgate cannot pass on (a document, a thinking block, a server tool
such as web_search) parses as `OtherBlock` or `ServerTool`, so that translate.py refuses it by
name (`unsupported_parameter`) instead of answering a validation error about its tag. Parameters
that only describe the request (`cache_control`, `service_tier`, `metadata`'s other fields…) are
accepted and ignored, as Anthropic's API would take them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

# The image types Anthropic's API takes.
ImageType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
# Anthropic's rules for a tool's name and a tool call's id.
TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
TOOL_USE_ID = r"^[a-zA-Z0-9_-]+$"


def _has_text(text: str) -> str:
    # Anthropic's own rule; engines refuse empty messages with errors of their own.
    if not text.strip():
        raise ValueError("text must contain non-whitespace text")
    return text


Text = Annotated[str, AfterValidator(_has_text)]


class _Block(BaseModel):
    model_config = ConfigDict(extra="ignore")  # cache_control, citations: hints only


class TextBlock(_Block):
    type: Literal["text"]
    text: Text


class Base64Source(BaseModel):
    type: Literal["base64"]
    media_type: ImageType
    data: str = Field(min_length=1)


class UrlSource(BaseModel):
    type: Literal["url"]
    url: str = Field(min_length=1, pattern=r"^https?://")


class ImageBlock(_Block):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: str = Field(pattern=TOOL_USE_ID)
    name: str = Field(min_length=1)
    input: dict[str, Any]


ResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: str = Field(pattern=TOOL_USE_ID)
    content: str | list[ResultPart] = ""
    is_error: bool = False


class OtherBlock(BaseModel):
    """A block of a kind no chatgate engine takes (document, thinking, server tool results…)."""

    model_config = ConfigDict(extra="allow")
    type: str


_BLOCKS = ("text", "image", "tool_use", "tool_result")


def _block_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _BLOCKS else "other"


Block = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[OtherBlock, Tag("other")],
    Discriminator(_block_kind),
]


class MessageIn(BaseModel):
    role: Literal["user", "assistant"]
    content: Text | Annotated[list[Block], Field(min_length=1)]


class CustomTool(BaseModel):
    model_config = ConfigDict(extra="ignore")  # cache_control
    type: Literal["custom"] | None = None
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    input_schema: dict[str, Any]


class ServerTool(BaseModel):
    """One of Anthropic's own tools (web_search_…, bash_…, code_execution_…), which run on
    Anthropic's servers: no chatgate engine has them."""

    model_config = ConfigDict(extra="allow")
    type: str
    name: str | None = None


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "custom" if kind in (None, "custom") else "server"


ToolIn = Annotated[
    Annotated[CustomTool, Tag("custom")] | Annotated[ServerTool, Tag("server")],
    Discriminator(_tool_kind),
]


class AutoChoice(BaseModel):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class AnyChoice(BaseModel):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class NamedChoice(BaseModel):
    type: Literal["tool"]
    name: str = Field(min_length=1)
    disable_parallel_tool_use: bool | None = None


class NoneChoice(BaseModel):
    type: Literal["none"]


ToolChoice = Annotated[
    AutoChoice | AnyChoice | NamedChoice | NoneChoice, Field(discriminator="type")
]


class Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str | None = Field(None, max_length=255)


class JsonOutputFormat(BaseModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="allow")  # checked in `refused`
    format: JsonOutputFormat | None = None
    effort: str | None = None


# Parameters of the Messages API that change the answer and that no chatgate engine takes:
# refused by name when sent (`thinking` only when it is not disabled).
REFUSED = ("top_k", "thinking", "container", "mcp_servers", "context_management")


class CountTokensRequest(BaseModel):
    """The request of `POST /v1/messages/count_tokens`: a message's, `max_tokens` optional."""

    model_config = ConfigDict(extra="allow")  # checked against REFUSED, then ignored

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolIn] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    thinking: dict[str, Any] | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None
    stream: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> CountTokensRequest:
        if any(not s.strip() for s in self.stop_sequences or ()):
            raise ValueError("each stop sequence must contain non-whitespace")
        names = {t.name for t in self.tools or () if isinstance(t, CustomTool)}
        if isinstance(self.tool_choice, NamedChoice) and self.tool_choice.name not in names:
            raise ValueError(f"tool_choice names {self.tool_choice.name!r}, not one of the tools")
        if isinstance(self.tool_choice, AnyChoice) and not self.tools:
            raise ValueError("tool_choice 'any' needs tools")
        self._check_results()
        return self

    def _check_results(self) -> None:
        """Each tool_result answers a tool_use of an earlier message, as Anthropic's API checks
        (an engine would refuse it with a less helpful error)."""
        called: set[str] = set()
        for i, message in enumerate(self.messages):
            for block in message.content if isinstance(message.content, list) else ():
                if isinstance(block, ToolUseBlock):
                    called.add(block.id)
                elif isinstance(block, ToolResultBlock) and block.tool_use_id not in called:
                    raise ValueError(
                        f"messages.{i}: a tool_result answers no earlier tool_use of its id"
                    )

    def refused(self) -> str | None:
        """The first parameter sent that chatgate refuses by name."""
        sent = {**(self.model_extra or {}), "top_k": self.top_k}
        if self.thinking is not None and self.thinking.get("type") != "disabled":
            sent["thinking"] = self.thinking
        if self.output_config is not None:
            extra = self.output_config.model_extra or {}
            options = {"effort": self.output_config.effort, **extra}
            name = next((n for n, v in options.items() if v is not None), None)
            if name is not None:
                return f"output_config.{name}"
        return next((name for name in REFUSED if sent.get(name) is not None), None)


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
