"""OpenAI's chat-completions request as chatgate's engine request (`CompletionRequest`), which
speaks the same vocabulary: messages become turns, the rest is carried as it is."""

from __future__ import annotations

from chatgate.core.errors import AppError
from chatgate.openai_compat.schemas import (
    AssistantMessage,
    AudioPartIn,
    ChatCompletionRequest,
    ChatMessageIn,
    ImagePartIn,
    JsonSchemaFormat,
    NamedToolChoice,
    TextPartIn,
    ToolMessage,
    UserMessage,
)
from chatgate.providers.base import ChatTurn, CompletionRequest
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.messages import AudioPart, ContentPart, ImagePart, TextPart, Tool, ToolCall


def engine_request(body: ChatCompletionRequest) -> CompletionRequest:
    """The client's turns and wishes; `open_call` adds the assistant's prompt and limits."""
    if (param := body.refused()) is not None:
        raise UnsupportedParameter(param, "chatgate")
    format_ = body.response_format
    tool_choice = body.tool_choice
    return CompletionRequest(
        model=body.model,
        messages=[turn_of(message) for message in body.messages],
        max_tokens=body.max_completion_tokens or body.max_tokens or 0,
        temperature=body.temperature,
        user=body.user,
        stream=body.stream,
        tools=tuple(
            Tool(t.function.name, t.function.description, t.function.parameters, t.function.strict)
            for t in body.tools or ()
        ),
        tool_choice=(
            tool_choice.model_dump() if isinstance(tool_choice, NamedToolChoice) else tool_choice
        ),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=(
            None
            if format_ is None or format_.type == "text"
            else format_.model_dump(by_alias=True, exclude_none=True)
            if isinstance(format_, JsonSchemaFormat)
            else {"type": format_.type}
        ),
        stop=(body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ()),
        seed=body.seed,
        top_p=body.top_p,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        logprobs=bool(body.logprobs),
        top_logprobs=body.top_logprobs,
        n=body.n,
    )


def turn_of(message: ChatMessageIn) -> ChatTurn:
    if isinstance(message, UserMessage):
        if isinstance(message.content, str):
            return ChatTurn("user", message.content)
        parts = tuple(_part(p) for p in message.content)
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        plain = all(isinstance(p, TextPart) for p in parts)
        return ChatTurn("user", text, parts=() if plain else parts)
    if isinstance(message, AssistantMessage):
        content = message.content
        text = (
            content
            if isinstance(content, str)
            else "".join(p.text if isinstance(p, TextPartIn) else p.refusal for p in content or ())
        )
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()
        )
        return ChatTurn("assistant", text, tool_calls=calls)
    text = (
        message.content
        if isinstance(message.content, str)
        else "".join(p.text for p in message.content)
    )
    if isinstance(message, ToolMessage):
        return ChatTurn("tool", text, tool_call_id=message.tool_call_id)
    return ChatTurn("system", text)  # system and developer alike


def _part(part: TextPartIn | ImagePartIn | AudioPartIn) -> ContentPart:
    if isinstance(part, TextPartIn):
        return TextPart(part.text)
    if isinstance(part, ImagePartIn):
        url = part.image_url.url
        if not url.startswith(("data:image/", "https://", "http://")):
            raise AppError(
                "an image_url is a data:image/… URL or an http(s) URL",
                code="invalid_image_url",
                status=400,
            )
        return ImagePart(url, part.image_url.detail)
    return AudioPart(part.input_audio.data, part.input_audio.format)
