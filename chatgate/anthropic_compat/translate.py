"""Anthropic's Messages request as chatgate's engine request (`CompletionRequest`, in OpenAI's
chat-completions vocabulary): the top-level system becomes a system turn, a `tool_use` block a
call of the assistant turn, each `tool_result` block a `tool` turn, an image an `ImagePart`, and
tool_choice OpenAI's value."""

from __future__ import annotations

import json
from typing import Any

from chatgate.anthropic_compat.schemas import (
    AnyChoice,
    AutoChoice,
    Base64Source,
    Block,
    CountTokensRequest,
    CustomTool,
    ImageBlock,
    MessageIn,
    NamedChoice,
    NoneChoice,
    OtherBlock,
    ServerTool,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from chatgate.core.errors import BadRequest
from chatgate.providers.base import ChatTurn, CompletionRequest
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.messages import ContentPart, ImagePart, TextPart, Tool, ToolCall

# Whose refusal it is when the dialect itself cannot pass a parameter on to any engine.
NO_ENGINE = "chatgate"
# What a tool result with is_error says to the model: OpenAI's tool turns have no such flag.
ERROR_PREFIX = "Error: "
# The parameters of providers/features.py (OpenAI's names) as this dialect calls them, so that
# a refusal names what the client sent.
DIALECT_NAMES = {
    "image_url": "image",
    "stop": "stop_sequences",
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
    "response_format.json_schema": "output_config.format",
}
# The blocks each role's messages may hold.
_ALLOWED = {
    "user": (TextBlock, ImageBlock, ToolResultBlock),
    "assistant": (TextBlock, ToolUseBlock),
}


def engine_request(body: CountTokensRequest) -> CompletionRequest:
    """The client's turns and wishes; `open_call` adds the assistant's prompt and limits."""
    if (param := body.refused()) is not None:
        raise UnsupportedParameter(param, NO_ENGINE)
    if body.messages[-1].role == "assistant":
        # A prefill is continued by Anthropic's older models only; the engines behind chatgate
        # would answer anew instead, and newer Claude models refuse it too.
        raise UnsupportedParameter("prefill", NO_ENGINE)
    system = _system_turns(body.system)
    turns = [turn for message in body.messages for turn in _turns(message)]
    tools = tuple(_tool(tool) for tool in body.tools or ())
    tool_choice, parallel = _tool_choice(body)
    format_ = body.output_config.format if body.output_config else None
    return CompletionRequest(
        model=body.model,
        messages=[*system, *turns],
        max_tokens=body.max_tokens or 0,
        temperature=body.temperature,
        user=body.metadata.user_id if body.metadata else None,
        stream=body.stream,
        tools=tools,
        tool_choice=tool_choice if tools else None,
        parallel_tool_calls=parallel if tools else None,
        response_format=(
            None
            if format_ is None
            else {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": format_.schema_, "strict": True},
            }
        ),
        stop=tuple(body.stop_sequences or ()),
        top_p=body.top_p,
    )


def in_dialect(refusal: UnsupportedParameter) -> UnsupportedParameter:
    """An engine's refusal naming the parameter as this dialect calls it."""
    name = DIALECT_NAMES.get(refusal.param)
    if name is not None:
        refusal.message = refusal.message.replace(repr(refusal.param), repr(name))
        refusal.param = name
    return refusal


def _system_turns(system: str | list[TextBlock] | None) -> list[ChatTurn]:
    text = system if isinstance(system, str) else "\n\n".join(b.text for b in system or ())
    return [ChatTurn("system", text)] if text.strip() else []


def _turns(message: MessageIn) -> list[ChatTurn]:
    """A message as chatgate's turns: an assistant's text and calls as one turn; a user's tool
    results as `tool` turns first (the API puts them first), then its text and images."""
    if isinstance(message.content, str):
        return [ChatTurn(message.role, message.content)]
    for block in message.content:
        _check_block(block, message.role)
    if message.role == "assistant":
        texts = [b.text for b in message.content if isinstance(b, TextBlock)]
        calls = tuple(
            ToolCall(b.id, b.name, json.dumps(b.input))
            for b in message.content
            if isinstance(b, ToolUseBlock)
        )
        return [ChatTurn("assistant", "\n\n".join(texts), tool_calls=calls)]
    turns: list[ChatTurn] = []
    parts: list[ContentPart] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            text, media = _result(block)
            turns.append(ChatTurn("tool", text, tool_call_id=block.tool_use_id))
            # A tool turn holds text only: its images follow it, in the user's turn.
            parts.extend(media)
        elif isinstance(block, TextBlock):
            parts.append(TextPart(block.text))
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))
    if parts:
        turns.append(_user_turn(parts))
    return turns


def _check_block(block: Block, role: str) -> None:
    if isinstance(block, OtherBlock):
        raise UnsupportedParameter(f"content.{block.type}", NO_ENGINE)
    if not isinstance(block, _ALLOWED[role]):
        raise BadRequest(
            f"a {role} message cannot hold a {block.type} block", code="invalid_request"
        )


def _user_turn(parts: list[ContentPart]) -> ChatTurn:
    text = "\n\n".join(p.text for p in parts if isinstance(p, TextPart))
    plain = all(isinstance(p, TextPart) for p in parts)
    return ChatTurn("user", text, parts=() if plain else tuple(parts))


def _result(block: ToolResultBlock) -> tuple[str, list[ContentPart]]:
    if isinstance(block.content, str):
        text, media = block.content, []
    else:
        text = "\n\n".join(b.text for b in block.content if isinstance(b, TextBlock))
        media = [_image(b) for b in block.content if isinstance(b, ImageBlock)]
    return (ERROR_PREFIX + text if block.is_error else text), list(media)


def _image(block: ImageBlock) -> ImagePart:
    source = block.source
    if isinstance(source, Base64Source):
        return ImagePart(f"data:{source.media_type};base64,{source.data}")
    return ImagePart(source.url)


def _tool(tool: CustomTool | ServerTool) -> Tool:
    if isinstance(tool, ServerTool):
        raise UnsupportedParameter(f"tools.{tool.type}", NO_ENGINE)
    return Tool(tool.name, tool.description, tool.input_schema)


def _tool_choice(body: CountTokensRequest) -> tuple[str | dict[str, Any] | None, bool | None]:
    """OpenAI's tool_choice and parallel_tool_calls for Anthropic's tool_choice."""
    choice = body.tool_choice
    if choice is None:
        return None, None
    if isinstance(choice, NoneChoice):
        return "none", None
    parallel = False if choice.disable_parallel_tool_use else None
    if isinstance(choice, AutoChoice):
        return "auto", parallel
    if isinstance(choice, AnyChoice):
        return "required", parallel
    assert isinstance(choice, NamedChoice)
    return {"type": "function", "function": {"name": choice.name}}, parallel
