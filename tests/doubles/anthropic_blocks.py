"""The content blocks of Anthropic's Messages API as the double checks and reads them: text,
images (base64 or URL sources), tool_use and tool_result blocks, the `tools` and `tool_choice`
fields, and the tool calls the double makes (an input built from the tool's `input_schema`).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]+")
BLOCK_TYPES = {"user": ("text", "image", "tool_result"), "assistant": ("text", "tool_use")}


class Invalid(Exception):
    """A request Anthropic would refuse with 400 invalid_request_error."""


@dataclass
class Message:
    """One message as the double reads it: its text (images and tool results in their place,
    as words the answer can echo), the tool calls it makes, the calls it answers."""

    role: str
    text: str
    tool_uses: list[str] = field(default_factory=list)
    tool_results: list[str] = field(default_factory=list)


def text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) for b in content):
        return "".join(b.get("text", "") for b in content if b.get("type") == "text")
    raise Invalid(f"{where}.content: Input should be a valid string or list of content blocks")


def read_message(role: str, content: Any, where: str) -> Message:
    if isinstance(content, str):
        return Message(role, content)
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise Invalid(f"{where}.content: Input should be a valid string or list of content blocks")
    message, words, others = Message(role, ""), [], 0
    for j, block in enumerate(content):
        at, kind = f"{where}.content.{j}", block.get("type")
        if kind not in BLOCK_TYPES[role]:
            expected = ", ".join(f"'{t}'" for t in BLOCK_TYPES[role])
            raise Invalid(f"{at}.type: Input tag '{kind}' does not match any of: {expected}")
        if kind == "text":
            if not isinstance(block.get("text"), str) or not block["text"]:
                raise Invalid(f"{at}.text: text content blocks must be non-empty")
            words.append(block["text"])
            others += 1
        elif kind == "image":
            words.append(image_mention(block.get("source"), f"{at}.image.source"))
            others += 1
        elif kind == "tool_use":
            if not TOOL_USE_ID.fullmatch(str(block.get("id"))):
                raise Invalid(f"{at}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            if not isinstance(block.get("input"), dict):
                raise Invalid(f"{at}.tool_use.input: Input should be a valid dictionary")
            message.tool_uses.append(block["id"])
        else:
            if others:
                raise Invalid(f"{at}: tool_result blocks must come before any other content")
            message.tool_results.append(str(block.get("tool_use_id")))
            words.append(text_of(block.get("content", ""), at))
    message.text = " ".join(words)
    return message


def image_mention(source: Any, where: str) -> str:
    """How the answer mentions an image: its media type and size, or its URL."""
    if not isinstance(source, dict):
        raise Invalid(f"{where}: Field required")
    if source.get("type") == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise Invalid(f"{where}.url.url: Input should be a valid URL")
        return f"[image {url}]"
    if source.get("type") != "base64":
        raise Invalid(
            f"{where}.type: Input tag '{source.get('type')}' does not match 'base64', 'url'"
        )
    media_type = source.get("media_type")
    if media_type not in IMAGE_TYPES:
        raise Invalid(
            f"{where}.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'"
        )
    try:
        data = base64.b64decode(str(source.get("data") or ""), validate=True)
    except binascii.Error:
        data = b""
    if not data:
        raise Invalid(f"{where}.base64.data: The image data is not valid base64")
    return f"[image {media_type} {len(data)} bytes]"


def check_tool_pairs(messages: list[Message], tools: list[dict[str, Any]]) -> None:
    """Every tool_result answers a tool_use of the message before it, and every tool_use is
    answered in the next message (unless it is the last one)."""
    for i, message in enumerate(messages):
        if (message.tool_uses or message.tool_results) and not tools:
            raise Invalid(
                "Requests which include `tool_use` or `tool_result` blocks must define tools."
            )
        previous = messages[i - 1].tool_uses if i else []
        for id_ in message.tool_results:
            if id_ not in previous:
                raise Invalid(
                    f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {id_}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        if message.tool_uses and i + 1 < len(messages):
            missing = [t for t in message.tool_uses if t not in messages[i + 1].tool_results]
            if missing:
                raise Invalid(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message."
                )


def read_tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The request's tools and its tool_choice (auto when it has none), checked."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise Invalid("tools: Input should be a valid list")
    names = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not TOOL_NAME.fullmatch(str(tool.get("name"))):
            raise Invalid(f"tools.{i}.custom.name: String should match '^[a-zA-Z0-9_-]{{1,64}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        names.append(tool["name"])
    if len(set(names)) < len(names):
        raise Invalid("tools: Tool names must be unique.")
    choice = body.get("tool_choice", {"type": "auto"})
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise Invalid("tool_choice.type: Input tag does not match 'auto', 'any', 'tool', 'none'")
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise Invalid(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found")
    if choice["type"] == "none" and "disable_parallel_tool_use" in choice:
        raise Invalid("tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted")
    return tools, choice


def tools_called(
    tools: list[dict[str, Any]], choice: dict[str, Any], directives: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Which tools the double calls: the forced one, or the one `[[call NAME]]` names, or every
    tool for `[[call-all]]` (unless parallel calls are off), else the first."""
    if choice["type"] == "tool":
        return [t for t in tools if t["name"] == choice["name"]]
    if "call-all" in directives and not choice.get("disable_parallel_tool_use"):
        return tools
    wanted = next(iter(directives.get("call") or ()), None)
    return [next((t for t in tools if t["name"] == wanted), tools[0])]


def tool_use(tool: dict[str, Any], words: list[str]) -> dict[str, Any]:
    supply = iter(reversed(words))  # the question's last words first ("... in Paris?")
    return {
        "type": "tool_use",
        "id": f"toolu_{uuid.uuid4().hex[:24]}",
        "name": tool["name"],
        "input": value_for(tool["input_schema"], supply),
    }


def value_for(schema: dict[str, Any], words: Any) -> Any:
    """A value the schema accepts: each required property of an object, strings a word of the
    user's text (or "x"), numbers 1, booleans true, an enum its first value."""
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return value_for(schema[key][0], words)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: value_for(properties.get(name) or {}, words)
            for name in schema.get("required") or ()
        }
    if kind == "array":
        return [value_for(schema.get("items") or {}, words)] if schema.get("minItems") else []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return None if kind == "null" else next(words, "x")
