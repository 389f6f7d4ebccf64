"""chatgate's request (OpenAI's chat-completions shapes, providers/features.py) in the Messages
API's terms: turns as alternating `user` and `assistant` messages of content blocks (text, image,
tool_use, tool_result), tools with their `input_schema`, and Anthropic's `tool_choice`.

A turn of text alone stays a string, as it always was: only what text cannot say (an image, a
tool's call or result) makes a message a list of blocks.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from chatgate.core.errors import AppError
from chatgate.providers.base import ChatTurn, CompletionRequest
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.messages import AudioPart, ImagePart, TextPart

Content = str | list[dict[str, Any]]

# `data:image/png;base64,....`: the only data URL an image block can carry.
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)((?:;[\w.+-]+=[^;,]*)*);base64,(.*)", re.DOTALL)
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class InvalidToolArguments(AppError):
    status, code = 400, "invalid_tool_arguments"


class InvalidImage(AppError):
    status, code = 400, "invalid_image_url"


def anthropic_messages(turns: list[ChatTurn], engine: str = "") -> tuple[str, list[dict[str, Any]]]:
    """Splits chatgate's turns into Anthropic's `system` and alternating `messages`.

    System turns (the assistant's prompt, and any recorded mid-history) join the top-level
    system; tool turns become `tool_result` blocks of a user message; consecutive turns of one
    role are merged; leading assistant turns, and tool results whose call went with them, left
    by a context window that cut through an exchange, are dropped.
    """
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    content: Content
    for turn in turns:
        if turn.role == "system":
            if turn.content.strip():
                system.append(turn.content)
            continue
        if turn.role == "tool":
            if not any(m["role"] == "assistant" for m in messages):
                continue  # its call was cut off with the turns before it
            role, content = "user", _tool_result(turn)
        else:
            role, content = turn.role, _content(turn, engine)
        if not content:
            continue  # the API refuses empty text
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] = _joined(messages[-1]["content"], content)
        elif messages or role == "user":
            messages.append({"role": role, "content": content})
    return "\n\n".join(system), messages


def _content(turn: ChatTurn, engine: str) -> Content:
    if not turn.tool_calls and not any(not isinstance(p, TextPart) for p in turn.parts):
        return turn.content if turn.content.strip() else ""
    blocks: list[dict[str, Any]] = []
    for part in turn.parts or (TextPart(turn.content),):
        if isinstance(part, TextPart):
            if part.text.strip():
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": _image_source(part.url)})
        elif isinstance(part, AudioPart):
            raise UnsupportedParameter("input_audio", engine)
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)}
        for call in turn.tool_calls
    )
    return blocks


def _tool_result(turn: ChatTurn) -> list[dict[str, Any]]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": turn.tool_call_id or ""}
    if turn.content:
        block["content"] = turn.content
    return [block]


def _image_source(url: str) -> dict[str, str]:
    if not url.startswith("data:"):
        return {"type": "url", "url": url}
    if (match := _DATA_URL.fullmatch(url)) is None:
        raise InvalidImage("an image's data URL must be data:<media type>;base64,<data>")
    return {"type": "base64", "media_type": match.group(1), "data": match.group(3)}


def _arguments(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}  # a call of a tool without parameters, streamed as nothing at all
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidToolArguments(
            "a tool call's arguments must be a JSON object to be sent to Anthropic, "
            f"not {arguments[:80]!r}"
        )
    return value


def _joined(earlier: Content, later: Content) -> Content:
    if isinstance(earlier, str) and isinstance(later, str):
        return earlier + "\n\n" + later
    blocks = [*_blocks(earlier), *_blocks(later)]
    # The API wants a user message's tool results before anything else in it.
    results = [b for b in blocks if b["type"] == "tool_result"]
    return results + [b for b in blocks if b["type"] != "tool_result"] if results else blocks


def _blocks(content: Content) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def tools_and_choice(request: CompletionRequest, engine: str) -> dict[str, Any]:
    """The body's `tools` and `tool_choice`, if the request has tools."""
    if not request.tools:
        return {}
    tools = []
    for tool in request.tools:
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        entry["input_schema"] = tool.parameters or _EMPTY_SCHEMA
        tools.append(entry)
    fields: dict[str, Any] = {"tools": tools}
    choice = _tool_choice(request.tool_choice, engine)
    if request.parallel_tool_calls is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice:
        fields["tool_choice"] = choice
    return fields


def _tool_choice(choice: str | dict[str, Any] | None, engine: str) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    # OpenAI's allowed_tools and custom tools have no counterpart in the Messages API.
    raise UnsupportedParameter("tool_choice", engine)
