"""An engine's answer as Anthropic's `message`: its text block, its tool_use blocks (the input a
parsed JSON object), the stop reason in Anthropic's vocabulary and the usage. The streamed form
is in events.py."""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.anthropic_compat.schemas import CountTokensRequest
from chatgate.anthropic_compat.translate import engine_request, in_dialect
from chatgate.auth.service import User
from chatgate.core.parts import Parts
from chatgate.core.tracing import random_hex
from chatgate.dialects.answer import AnswerSoFar
from chatgate.dialects.call import EngineCall, open_call
from chatgate.dialects.marks import answer_marks, citation_marks
from chatgate.dialects.stream import whole_answer
from chatgate.providers.base import ProviderError
from chatgate.providers.features import UnsupportedParameter
from chatgate.providers.messages import ToolCall


async def open_message_call(parts: Parts, user: User, body: CountTokensRequest) -> EngineCall:
    """The engine call of a Messages request (`open_call`), its refusals in Anthropic's names."""
    try:
        return await open_call(parts, user, engine_request(body), surface="anthropic")
    except UnsupportedParameter as refusal:
        raise in_dialect(refusal) from None


def message_id() -> str:
    return "msg_" + random_hex(24)


def tool_use_id() -> str:
    """An id for a call whose engine gave it none (Anthropic's own begin `toolu_`)."""
    return "toolu_" + random_hex(24)


def stop_reason(reason: str | None, *, has_calls: bool) -> str:
    """An engine's finish reason (OpenAI's vocabulary) in Anthropic's."""
    if has_calls and reason in (None, "stop", "tool_calls"):
        return "tool_use"  # some engines say "stop" after calls; Anthropic's clients look here
    if reason in ("length", "max_tokens", "max_output_tokens"):
        return "max_tokens"
    if reason == "content_filter":
        return "refusal"
    return "end_turn"


async def usage_of(answer: AnswerSoFar, call: EngineCall) -> dict[str, int]:
    """The engine's usage; from an engine that reports none, the prompt as `open_call` counted
    it and the answer counted here, as the token limit charges them."""
    usage = answer.usage
    if usage.prompt_tokens or usage.completion_tokens:
        return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    text = answer.text
    output = await call.provider.count_tokens_async(text) if text else 0
    return {"input_tokens": call.meter.prompt_tokens, "output_tokens": output}


def tool_input(call: ToolCall, engine: str) -> dict[str, Any]:
    """A call's arguments as the JSON object Anthropic's `input` is."""
    if not call.arguments.strip():
        return {}  # a tool without parameters, called with nothing at all
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(
            f"engine {engine!r} called the tool {call.name!r} with arguments that are not a "
            "JSON object"
        )
    return value


async def complete(call: EngineCall, *, model: str) -> dict[str, Any]:
    """The whole answer as one Anthropic `message`."""
    answer = await whole_answer(call)
    choice = answer.choice(0)
    content: list[dict[str, Any]] = []
    if choice.text:
        content.append({"type": "text", "text": choice.text})
    content.extend(
        {
            "type": "tool_use",
            "id": tool.id or tool_use_id(),
            "name": tool.name,
            "input": tool_input(tool, call.provider.id),
        }
        for tool in choice.tool_calls
    )
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason, has_calls=bool(choice.calls)),
        "stop_sequence": None,
        "usage": await usage_of(answer, call),
        **answer_marks(answer.source),
        **citation_marks(call),
    }
