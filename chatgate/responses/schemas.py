"""OpenAI's Responses request (`POST /v1/responses`) as chatgate takes it: `input` as text or
items (messages with their content parts, function calls and their outputs), `instructions`,
function tools, `tool_choice`, `text.format`, the sampling parameters, `previous_response_id`
and `store`.

What changes the answer and cannot be honoured is refused by name: hosted tools (web search,
file search…), items and parts chatgate has no engine for, and the parameters of `REFUSED`.
What only describes the request (`metadata`, `user`, `service_tier`, `prompt_cache_key`…) is
accepted; `metadata` is given back on the response."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from chatgate.core.text import UnicodeText

Text = UnicodeText  # every text may be stored in a session: no NUL, no lone surrogates


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore")  # ids, statuses, phases: nothing to the engine


class InputText(_Item):
    type: Literal["input_text", "output_text"]  # output_text: an earlier answer sent back
    text: Text


class InputImage(_Item):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class Refusal(_Item):
    type: Literal["refusal"]
    refusal: Text


class OtherPart(_Item):
    """A part chatgate cannot pass on (`input_file`, `input_audio`…): refused by its type."""

    model_config = ConfigDict(extra="allow")
    type: str


def _part_type(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("input_text", "output_text", "input_image", "refusal") else "other"


ContentPart = Annotated[
    Annotated[InputText, Tag("input_text")]
    | Annotated[InputText, Tag("output_text")]
    | Annotated[InputImage, Tag("input_image")]
    | Annotated[Refusal, Tag("refusal")]
    | Annotated[OtherPart, Tag("other")],
    Discriminator(_part_type),
]


class MessageItem(_Item):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: Text | list[ContentPart]


class FunctionCallItem(_Item):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=64)
    arguments: Text


class FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=255)
    output: Text | list[ContentPart]


class OtherItem(_Item):
    """An item chatgate has nothing for (`reasoning`, `item_reference`, hosted tools' calls…)."""

    model_config = ConfigDict(extra="allow")
    type: str


_ITEM_TYPES = ("message", "function_call", "function_call_output")


def _item_type(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "")
    return kind if kind in _ITEM_TYPES else "other"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(_item_type),
]


class FunctionTool(BaseModel):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class OtherTool(BaseModel):
    """A hosted tool (`web_search`, `file_search`, `code_interpreter`…): refused by its type."""

    model_config = ConfigDict(extra="allow")
    type: str


ToolIn = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[OtherTool, Tag("other")],
    Discriminator(lambda v: "function" if _field(v, "type") == "function" else "other"),
]


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


class FunctionChoice(BaseModel):
    type: Literal["function"]
    name: str


class TextFormatPlain(BaseModel):
    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    type: Literal["json_object"]


class JsonSchemaFormat(BaseModel):
    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class OtherFormat(BaseModel):
    """A format chatgate has no engine for: refused (by a callable discriminator, whose error
    does not repeat the client's tag as pydantic's own would)."""

    model_config = ConfigDict(extra="allow")
    type: str


_FORMATS = ("text", "json_object", "json_schema")

TextFormat = Annotated[
    Annotated[TextFormatPlain, Tag("text")]
    | Annotated[JsonObjectFormat, Tag("json_object")]
    | Annotated[JsonSchemaFormat, Tag("json_schema")]
    | Annotated[OtherFormat, Tag("other")],
    Discriminator(lambda v: _field(v, "type") if _field(v, "type") in _FORMATS else "other"),
]


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="allow")  # checked: `verbosity` is refused

    format: TextFormat = Field(default_factory=lambda: TextFormatPlain(type="text"))


# What a type named in a refusal looks like when it is OpenAI's (web_search_preview, input_file…).
_KNOWN_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

# Parameters of OpenAI's Responses API that change the answer and that chatgate cannot honour,
# refused by name when sent with a value (a false, null or empty one is the default, taken).
REFUSED = (
    "background",
    "conversation",
    "prompt",
    "reasoning",
    "include",
    "max_tool_calls",
    "top_logprobs",
    "context_management",
    "moderation",
)


class ResponseRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # checked against REFUSED, then ignored

    model: str = Field(min_length=1)
    input: Annotated[str, Field(min_length=1)] | list[InputItem]
    instructions: Text | None = None
    tools: list[ToolIn] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = Field(None, max_length=64)
    store: bool | None = True
    stream: bool | None = False
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: TextConfig | None = None
    # Checked whole (`_consistent`): an error's location would otherwise name a key, which is
    # the client's own text.
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, max_length=255)
    truncation: Literal["auto", "disabled"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ResponseRequest:
        if isinstance(self.input, str) and "\x00" in self.input:
            raise ValueError("NUL (U+0000) is not text that every backend can store")
        if isinstance(self.input, list) and not self.input:
            raise ValueError("input holds no items")
        metadata = self.metadata or {}
        if len(metadata) > 16 or any(
            len(k) > 64 or len(v) > 512 or "\x00" in k + v for k, v in metadata.items()
        ):
            raise ValueError(
                "metadata holds at most 16 pairs, keys of at most 64 characters and values of "
                "at most 512"
            )
        if isinstance(self.tool_choice, FunctionChoice):
            names = {t.name for t in self.tools or () if isinstance(t, FunctionTool)}
            if self.tool_choice.name not in names:
                raise ValueError("tool_choice names a function that is not one of the tools")
        return self

    @property
    def stored(self) -> bool:
        return self.store is not False

    def refused(self) -> str | None:
        """The first parameter, tool, item or part sent that chatgate refuses, by name; a name
        that is none of OpenAI's is `unknown` (it is the client's text, not repeated)."""
        found = self._refused()
        if found is None:
            return None
        head, _, kind = found.partition(".")
        return found if not kind or _KNOWN_NAME.fullmatch(kind) else f"{head}.unknown"

    def _refused(self) -> str | None:
        """The first parameter, tool, item or part sent that chatgate refuses, by name."""
        extra = self.model_extra or {}
        for name in REFUSED:
            if extra.get(name) not in (None, False, [], {}):
                return name
        if self.text is not None and (self.text.model_extra or {}).get("verbosity") is not None:
            return "text.verbosity"
        if self.text is not None and isinstance(self.text.format, OtherFormat):
            return "text.format"
        for tool in self.tools or ():
            if isinstance(tool, OtherTool):
                return f"tools.{tool.type}"
        if isinstance(self.tool_choice, dict):
            return f"tool_choice.{self.tool_choice.get('type')}"
        return self._refused_item()

    def _refused_item(self) -> str | None:
        for item in self.input if isinstance(self.input, list) else ():
            if isinstance(item, OtherItem):
                return f"input.{item.type}"
            parts = (
                item.content
                if isinstance(item, MessageItem)
                else item.output
                if isinstance(item, FunctionCallOutputItem)
                else ""
            )
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, OtherPart):
                    return f"input.{part.type}"
                if isinstance(part, InputImage) and part.file_id and not part.image_url:
                    return "input_image.file_id"
        return None
