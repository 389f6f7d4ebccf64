"""The response object of OpenAI's Responses API, as its SDKs read it: output items (a `message`
with its `output_text`, `function_call`s), usage, status, and the request's settings echoed;
with chatgate's own fields beside them (`chatgate_session_id`, the engine that answered)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from chatgate.core.tracing import random_hex
from chatgate.providers.base import Usage
from chatgate.providers.fallback import Provenance
from chatgate.providers.messages import ToolCall
from chatgate.responses import items
from chatgate.responses.schemas import FunctionChoice, ResponseRequest

Status = Literal["completed", "incomplete", "failed", "cancelled", "in_progress"]
ItemStatus = Literal["completed", "incomplete", "in_progress"]


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{random_hex(48)}"


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def message_item(item_id: str, text: str, status: ItemStatus) -> dict[str, Any]:
    content = [] if status == "in_progress" else [output_text(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(item_id: str, call: ToolCall, status: ItemStatus) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


@dataclass(slots=True)
class Draft:
    """One response being answered: its ids and the request's settings, which each state of
    the object (created, in progress, completed, failed) repeats."""

    body: ResponseRequest
    model: str  # the assistant's id
    session_id: str | None  # None when nothing is stored
    temperature: float | None
    # The knowledge bases' passages the engine was shown (API.md's `Citation`s); None for an
    # assistant without knowledge bases.
    citations: list[dict[str, Any]] | None = None
    id: str = field(default_factory=lambda: f"resp_{random_hex(48)}")
    created_at: int = field(default_factory=lambda: int(time.time()))
    message_id: str = field(default_factory=lambda: new_item_id("msg"))
    call_ids: dict[int, str] = field(default_factory=dict)

    def call_id(self, index: int) -> str:
        if (found := self.call_ids.get(index)) is None:
            found = self.call_ids[index] = new_item_id("fc")
        return found

    def output(
        self, text: str, calls: list[ToolCall], *, status: ItemStatus
    ) -> list[dict[str, Any]]:
        """The answer's items when it was not streamed: its text (if any, or if nothing else),
        then its calls."""
        out = [message_item(self.message_id, text, status)] if text or not calls else []
        out += [call_item(self.call_id(i), c, "completed") for i, c in enumerate(calls)]
        return out

    def object(
        self,
        *,
        status: Status,
        output: list[dict[str, Any]],
        usage: Usage | None = None,
        error: dict[str, Any] | None = None,
        source: Provenance | None = None,
    ) -> dict[str, Any]:
        body = self.body
        choice = body.tool_choice
        text_format = body.text.format if body.text else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": (
                {"reason": "max_output_tokens"} if status == "incomplete" else None
            ),
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "max_tool_calls": None,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.stored,
            "temperature": self.temperature,
            "text": {
                "format": (
                    text_format.model_dump(by_alias=True, exclude_none=True)
                    if text_format is not None
                    else {"type": "text"}
                )
            },
            "tool_choice": (
                choice.model_dump() if isinstance(choice, FunctionChoice) else choice or "auto"
            ),
            "tools": items.echoed_tools(body),
            "top_logprobs": 0,
            "top_p": body.top_p if body.top_p is not None else 1.0,
            "truncation": body.truncation or "disabled",
            "usage": usage_object(usage) if usage is not None else None,
            "user": body.user,
            "metadata": body.metadata or {},
            "chatgate_session_id": self.session_id,
            "chatgate_provider": source.provider if source else None,
            "chatgate_fallback": source.fallback if source else False,
            **({} if self.citations is None else {"chatgate_citations": self.citations}),
        }


def finished(reason: str | None) -> Status:
    """The status of an answer that ended with this finish reason."""
    return "incomplete" if reason in ("length", "max_tokens", "max_output_tokens") else "completed"


def failure(code: str, message: str, status: int, trace_id: str) -> dict[str, Any]:
    """A failed response's `error`: OpenAI's code (rate_limit_exceeded or server_error), with
    chatgate's own code and the trace id beside it."""
    openai_code = "rate_limit_exceeded" if status == 429 else "server_error"
    return {"code": openai_code, "message": message, "chatgate_code": code, "trace_id": trace_id}
