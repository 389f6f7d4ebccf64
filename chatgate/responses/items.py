"""A Responses request as chatgate's engine request: its input items as turns (messages, calls of
the client's functions, their outputs), its tools, tool choice and text format in the shapes of
`providers/features.py`, which OpenAI's chat completions share."""

from __future__ import annotations

import dataclasses
from typing import Any

from chatgate.core.errors import AppError
from chatgate.providers.base import ChatTurn, CompletionRequest
from chatgate.providers.messages import ContentPart, ImagePart, TextPart, Tool, ToolCall
from chatgate.responses.schemas import (
    ContentPart as PartIn,
)
from chatgate.responses.schemas import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionChoice,
    FunctionTool,
    InputImage,
    InputText,
    JsonSchemaFormat,
    MessageItem,
    Refusal,
    ResponseRequest,
    TextFormatPlain,
)

IMAGE_MARK = "[image]"  # what a stored message says where its input had an image


def input_turns(body: ResponseRequest) -> list[ChatTurn]:
    """The request's input as turns: a function call joins the assistant turn before it."""
    if isinstance(body.input, str):
        return [ChatTurn("user", body.input)]
    turns: list[ChatTurn] = []
    for item in body.input:
        if isinstance(item, MessageItem):
            turns.append(_message_turn(item))
        elif isinstance(item, FunctionCallItem):
            call = ToolCall(item.call_id, item.name, item.arguments)
            last = turns[-1] if turns else None
            if last is not None and last.role == "assistant":
                turns[-1] = dataclasses.replace(last, tool_calls=(*last.tool_calls, call))
            else:
                turns.append(ChatTurn("assistant", "", tool_calls=(call,)))
        elif isinstance(item, FunctionCallOutputItem):
            output = item.output if isinstance(item.output, str) else _text_only(item.output)
            turns.append(ChatTurn("tool", output, tool_call_id=item.call_id))
    return turns


def _message_turn(item: MessageItem) -> ChatTurn:
    role = "system" if item.role == "developer" else item.role
    if isinstance(item.content, str):
        return ChatTurn(role, item.content)
    if role != "user":
        return ChatTurn(role, _text_only(item.content))
    parts = tuple(_part(p) for p in item.content)
    text = "".join(p.text for p in parts if isinstance(p, TextPart))
    plain = all(isinstance(p, TextPart) for p in parts)
    return ChatTurn("user", text, parts=() if plain else parts)


def _text_only(parts: list[PartIn]) -> str:
    if any(isinstance(p, InputImage) for p in parts):
        raise AppError("images are taken in user messages only", code="invalid_request", status=400)
    return "".join(p.text if isinstance(p, InputText) else p.refusal for p in parts)  # type: ignore[union-attr]


def _part(part: PartIn) -> ContentPart:
    if isinstance(part, InputText):
        return TextPart(part.text)
    if isinstance(part, Refusal):
        return TextPart(part.refusal)
    assert isinstance(part, InputImage)  # other parts were refused by name before
    url = part.image_url or ""
    if not url.startswith(("data:image/", "https://")):
        raise AppError(
            "an input_image's image_url is a data:image/… URL or an https URL",
            code="invalid_image_url",
            status=400,
        )
    detail = part.detail if part.detail in ("auto", "low", "high") else None
    return ImagePart(url, detail)


def stored_text(turn: ChatTurn) -> str:
    """A turn's text as its message keeps it: an image is kept as a mark where it was."""
    if not turn.parts:
        return turn.content
    segments = (p.text if isinstance(p, TextPart) else IMAGE_MARK for p in turn.parts)
    return "\n".join(s for s in segments if s)


def engine_request(body: ResponseRequest, turns: list[ChatTurn]) -> CompletionRequest:
    """The conversation and the client's wishes; `open_call` adds the assistant's prompt."""
    return CompletionRequest(
        model=body.model,
        messages=turns,
        max_tokens=body.max_output_tokens or 0,
        temperature=body.temperature,
        user=body.user,
        stream=bool(body.stream),
        tools=tuple(
            Tool(t.name, t.description, t.parameters, t.strict)
            for t in body.tools or ()
            if isinstance(t, FunctionTool)
        ),
        tool_choice=tool_choice(body),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=response_format(body),
        top_p=body.top_p,
    )


def tool_choice(body: ResponseRequest) -> str | dict[str, Any] | None:
    choice = body.tool_choice
    if isinstance(choice, FunctionChoice):
        return {"type": "function", "function": {"name": choice.name}}
    return choice if isinstance(choice, str) else None


def response_format(body: ResponseRequest) -> dict[str, Any] | None:
    """`text.format` as chat completions' `response_format`."""
    format_ = body.text.format if body.text else None
    if format_ is None or isinstance(format_, TextFormatPlain):
        return None
    if isinstance(format_, JsonSchemaFormat):
        schema = format_.model_dump(by_alias=True, exclude_none=True, exclude={"type"})
        return {"type": "json_schema", "json_schema": schema}
    return {"type": "json_object"}


def echoed_tools(body: ResponseRequest) -> list[dict[str, Any]]:
    """The tools as the response object lists them."""
    return [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
            "strict": t.strict if t.strict is not None else True,
        }
        for t in body.tools or ()
        if isinstance(t, FunctionTool)
    ]
