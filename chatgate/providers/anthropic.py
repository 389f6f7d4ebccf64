"""Anthropic's Messages API (`POST /v1/messages`), streaming or not.

The system prompt travels as the top-level `system`; the conversation is reshaped to what the API
accepts: only `user` and `assistant` turns, alternating, starting with `user`, with images and
tools as content blocks (providers/anthropic_blocks.py). The model's `tool_use` blocks come back
as OpenAI's tool calls, numbered among themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from chatgate.core.config import ProviderConfig
from chatgate.providers.anthropic_blocks import anthropic_messages, tools_and_choice
from chatgate.providers.base import (
    Chunk,
    CompletionRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    Usage,
)
from chatgate.providers.http import HttpCall, HttpProvider, opaque_user
from chatgate.providers.messages import ToolCallDelta

# Anthropic's stop reasons in the OpenAI vocabulary the rest of chatgate speaks.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic's error types (HTTP statuses, and `error` events mid-stream) -> chatgate's.
_ERROR_TYPES: dict[str, tuple[type[ProviderError], str, int | None]] = {
    "invalid_request_error": (ProviderError, "upstream_rejected", None),
    "authentication_error": (ProviderError, "upstream_auth_failed", None),
    "permission_error": (ProviderError, "upstream_auth_failed", None),
    "billing_error": (ProviderUnavailable, "upstream_quota_exceeded", None),
    "not_found_error": (ProviderError, "upstream_not_found", None),
    "request_too_large": (ProviderError, "upstream_request_too_large", 413),
    "api_error": (ProviderError, "upstream_error", None),
    "timeout_error": (ProviderTimeout, "upstream_timeout", None),
    "overloaded_error": (ProviderUnavailable, "upstream_overloaded", None),
}
_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicProvider(HttpProvider["_Call"]):
    # Translated into the Messages API; the rest has no counterpart there.
    honours = frozenset(
        {"tools", "tool_choice", "parallel_tool_calls", "image_url", "stop", "top_p"}
    )

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config, "/v1/messages")

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def _call(self, request: CompletionRequest) -> _Call:
        return _Call(self.config.stream and request.stream, self.subject)

    def _body(self, request: CompletionRequest, call: _Call) -> dict[str, Any]:
        system, messages = anthropic_messages(request.messages, self.id)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
            "stream": call.streams,
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            # Anthropic's range is 0..1, narrower than the assistants' 0..2.
            body["temperature"] = min(request.temperature, 1.0)
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.tools:
            body.update(tools_and_choice(request, self.id))
        if request.user:
            # Anthropic asks for an opaque id here, never a name, e-mail or phone number.
            body["metadata"] = {"user_id": opaque_user(request.user)}
        return body

    async def _error_from_response(
        self, response: aiohttp.ClientResponse, call: _Call
    ) -> ProviderError:
        try:
            error = orjson.loads(await response.read()).get("error") or {}
            kind, message = error.get("type"), error.get("message")
        except (orjson.JSONDecodeError, AttributeError):
            kind, message = None, None
        if response.status == 429:
            text = f"{self.subject} answered 429" + (f": {message}" if message else "")
            retry = response.headers.get("retry-after", "1")
            return ProviderRateLimited(text, headers={"Retry-After": retry})
        request_id = response.headers.get("request-id")
        return _error(self.subject, response.status, kind, message, request_id)


def _error(
    subject: str,
    status: int | None,
    kind: str | None,
    message: str | None,
    request_id: str | None = None,
) -> ProviderError:
    kind = kind or _STATUS_TYPES.get(status or 0) or "api_error"
    where = f"answered {status} {kind}" if status else f"failed mid-answer: {kind}"
    text = f"{subject} {where}" + (f": {message}" if message else "")
    if request_id:
        text += f" (request id {request_id})"
    if kind == "rate_limit_error":
        return ProviderRateLimited(text, headers={"Retry-After": "1"})
    if kind in _ERROR_TYPES:
        error_class, code, our_status = _ERROR_TYPES[kind]
        return error_class(text, code=code, status=our_status)
    if status == 503:
        return ProviderUnavailable(text)
    if status and status < 500:
        return ProviderError(text, code="upstream_rejected")
    return ProviderError(text)


@dataclass(slots=True)
class _ToolUse:
    index: int
    has_input: bool = False


class _Call(HttpCall):
    """Server-sent events (`event:` and `data:` lines, a blank line ends one) folded into
    chunks: text as it comes, tool calls as their blocks start and their input's JSON grows,
    usage and the finish reason at `message_stop`."""

    def __init__(self, streams: bool, subject: str) -> None:
        super().__init__(streams)
        self.subject = subject
        self.usage = Usage()
        self.finish_reason = "stop"
        self._event_name, self._data = "", b""
        # Anthropic's block index -> its tool call, numbered among this answer's calls from 0
        # as OpenAI numbers them (Anthropic's index counts the text blocks too).
        self._calls: dict[int, _ToolUse] = {}

    def feed(self, line: bytes) -> Chunk | None:
        line = line.rstrip(b"\r\n")
        if line.startswith(b"event:"):
            self._event_name = line[6:].strip().decode()
        elif line.startswith(b"data:"):
            self._data += (b"\n" if self._data else b"") + line[5:].strip()
        elif not line and self._data:  # a blank line ends an event
            event = _json_object(self._data)
            event.setdefault("type", self._event_name)
            self._event_name, self._data = "", b""
            return self._fold(event)
        return None

    def _fold(self, event: dict[str, Any]) -> Chunk | None:
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = delta.get("text")
                return Chunk(text=str(text)) if text else None
            if delta.get("type") == "input_json_delta":
                return self._input(event.get("index"), str(delta.get("partial_json") or ""))
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "text":
                text = block.get("text")
                return Chunk(text=str(text)) if text else None
            if block.get("type") == "tool_use":
                return self._tool_use(event.get("index"), block)
        elif kind == "content_block_stop":
            call = self._calls.get(event.get("index", -1))
            if call is not None and not call.has_input:
                # A call without parameters may stream no input at all; OpenAI's clients
                # expect its arguments as JSON all the same.
                return Chunk(tool_calls=[ToolCallDelta(index=call.index, arguments="{}")])
        elif kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self.usage.prompt_tokens = _input_tokens(usage)
            self.usage.completion_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "message_delta":
            delta, usage = event.get("delta") or {}, event.get("usage") or {}
            if reason := delta.get("stop_reason"):
                self.finish_reason = _FINISH_REASONS.get(reason, reason)
            if "output_tokens" in usage:  # a running total, not an increment
                self.usage.completion_tokens = int(usage["output_tokens"] or 0)
            if "input_tokens" in usage:
                self.usage.prompt_tokens = _input_tokens(usage)
        elif kind == "message_stop":
            self.finished = True
            return Chunk(usage=self.usage, finish_reason=self.finish_reason)
        elif kind == "error":
            error = event.get("error") or {}
            raise _error(self.subject, None, error.get("type"), error.get("message"))
        # ping, thinking blocks and event types added later carry no answer.
        return None

    def _tool_use(self, index: Any, block: dict[str, Any]) -> Chunk:
        call = self._calls[index] = _ToolUse(len(self._calls))
        delta = ToolCallDelta(index=call.index, id=block.get("id"), name=block.get("name"))
        if block.get("input"):  # the API starts with {} and streams the input after
            delta.arguments, call.has_input = orjson.dumps(block["input"]).decode(), True
        return Chunk(tool_calls=[delta])

    def _input(self, index: Any, partial: str) -> Chunk | None:
        call = self._calls.get(index)
        if call is None or not partial:
            return None
        call.has_input = True
        return Chunk(tool_calls=[ToolCallDelta(index=call.index, arguments=partial)])

    def whole(self, body: bytes) -> Chunk:
        return _chunk_from_message(_json_object(body))


def _json_object(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _input_tokens(usage: dict[str, Any]) -> int:
    # Tokens read from or written to the prompt cache are prompt tokens too.
    return sum(
        int(usage.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


def _chunk_from_message(body: dict[str, Any]) -> Chunk:
    usage = body.get("usage") or {}
    blocks = body.get("content") or ()
    text = "".join(block.get("text") or "" for block in blocks if block.get("type") == "text")
    calls = [
        ToolCallDelta(
            index=index,
            id=block.get("id"),
            name=block.get("name"),
            arguments=orjson.dumps(block.get("input") or {}).decode(),
        )
        for index, block in enumerate(b for b in blocks if b.get("type") == "tool_use")
    ]
    reason = body.get("stop_reason") or "end_turn"
    return Chunk(
        text=text,
        usage=Usage(_input_tokens(usage), int(usage.get("output_tokens") or 0)),
        finish_reason=_FINISH_REASONS.get(reason, reason),
        model=body.get("model"),
        tool_calls=calls or None,
    )
