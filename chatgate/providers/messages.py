"""What a turn and an answer may hold beyond text: content parts (images, audio), tools, the
calls a model makes of them and the pieces those calls stream in. Shapes follow OpenAI's chat
completions, the richest of the dialects: a tool's `parameters` is a JSON schema, a call's
`arguments` is JSON text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by `data:` URL (base64) or https URL, as OpenAI's `image_url` part."""

    url: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AudioPart:
    """Base64 audio, as OpenAI's `input_audio` part."""

    data: str
    format: str


ContentPart = TextPart | ImagePart | AudioPart


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made, in an assistant turn of the conversation."""

    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call as it streams: the first piece of call `index` has its id and
    name, later pieces add to its arguments (OpenAI's `delta.tool_calls` items). A whole call
    from an engine that does not stream is one delta with everything."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
