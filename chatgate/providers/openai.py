"""Any OpenAI-compatible chat-completions API (OpenAI, DeepSeek, vLLM, Ollama, llama.cpp server).

One pooled aiohttp session per provider for the life of the process (measured here: aiohttp
served about 5,300 requests/s through a minimal proxy where httpx served about 900).

Every parameter of providers/features.py passes through in OpenAI's own shapes; a plain text
request's body is what it always was (no key is sent that the request did not set).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from chatgate.core.config import ProviderConfig
from chatgate.providers.base import (
    ChatTurn,
    Chunk,
    CompletionRequest,
    ProviderError,
    ProviderRateLimited,
    Usage,
)
from chatgate.providers.features import PARAMETERS
from chatgate.providers.http import HttpCall, HttpProvider, opaque_user
from chatgate.providers.messages import AudioPart, ContentPart, ImagePart, Tool, ToolCallDelta

# Request fields passed through under their own names when set (None: not sent).
_SENT_WHEN_SET = (
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "seed",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
)


class OpenAIProvider(HttpProvider["_Call"]):
    # The dialect every parameter comes from: each passes through as the client sent it.
    honours = frozenset(PARAMETERS)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config, "/chat/completions")

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _call(self, request: CompletionRequest) -> _Call:
        return _Call(self.config.stream and request.stream, self.subject)

    def _body(self, request: CompletionRequest, call: _Call) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [
                _message(m)
                if m.parts or m.tool_calls or m.tool_call_id is not None
                else {"role": m.role, "content": m.content}
                for m in request.messages
            ],
            "max_tokens": request.max_tokens,
            "stream": call.streams,
        }
        if call.streams:
            body["stream_options"] = {"include_usage": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.user:
            # Enough for the engine's abuse monitoring to tell users apart, never who they are.
            body["user"] = opaque_user(request.user)
        if request.tools:
            body["tools"] = [_tool(tool) for tool in request.tools]
        for name in _SENT_WHEN_SET:  # each as the client gave it, only when it gave one
            if (value := getattr(request, name)) is not None:
                body[name] = value
        if request.stop:
            body["stop"] = list(request.stop)
        if request.logprobs:
            body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
        if request.n != 1:
            body["n"] = request.n
        return body

    async def _error_from_response(
        self, response: aiohttp.ClientResponse, call: _Call
    ) -> ProviderError:
        try:
            detail = (orjson.loads(await response.read()).get("error") or {}).get("message", "")
        except (orjson.JSONDecodeError, AttributeError):
            detail = ""
        message = f"{self.subject} answered {response.status}" + (f": {detail}" if detail else "")
        if response.status == 429:
            retry = response.headers.get("Retry-After", "1")
            return ProviderRateLimited(message, headers={"Retry-After": retry})
        if response.status in (401, 403):
            return ProviderError(message, code="upstream_auth_failed")
        if response.status >= 500:
            return ProviderError(message)
        return ProviderError(message, code="upstream_rejected")


def _message(turn: ChatTurn) -> dict[str, Any]:
    """A turn holding more than text: content parts, tool calls, or a tool's result."""
    message: dict[str, Any] = {
        "role": turn.role,
        "content": [_part(p) for p in turn.parts] if turn.parts else turn.content,
    }
    if turn.tool_calls:
        if not turn.parts and not turn.content:
            message["content"] = None  # as OpenAI writes an assistant turn of calls only
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in turn.tool_calls
        ]
    if turn.tool_call_id is not None:
        message["tool_call_id"] = turn.tool_call_id
    return message


def _part(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        image = (
            {"url": part.url} if part.detail is None else {"url": part.url, "detail": part.detail}
        )
        return {"type": "image_url", "image_url": image}
    if isinstance(part, AudioPart):
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}}
    return {"type": "text", "text": part.text}


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _call_deltas(items: list[dict[str, Any]]) -> list[ToolCallDelta]:
    """OpenAI's `tool_calls` items (streamed pieces or whole calls) as ToolCallDeltas."""
    deltas = []
    for position, item in enumerate(items):
        function = item.get("function") or {}
        deltas.append(
            ToolCallDelta(
                index=item.get("index", position),
                id=item.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )
        )
    return deltas


def _usage(usage: dict[str, Any]) -> Usage:
    return Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))


def _piece(choice: dict[str, Any], model: str | None) -> Chunk | None:
    """One streamed choice's delta as a chunk, None when it holds nothing (the role).
    Positional arguments and no lookup of what is absent: this runs for every piece of text."""
    delta = choice.get("delta") or {}
    chunk = Chunk(delta.get("content") or "", None, choice.get("finish_reason"), model)
    if index := choice.get("index"):
        chunk.choice = index
    if calls := delta.get("tool_calls"):
        chunk.tool_calls = _call_deltas(calls)
    if logprobs := choice.get("logprobs"):
        chunk.logprobs = logprobs.get("content") or None
    if chunk.text or chunk.finish_reason or chunk.tool_calls or chunk.logprobs:
        return chunk
    return None


class _Call(HttpCall):
    """Server-sent `data:` lines of chat.completion.chunk objects, ended by `data: [DONE]`."""

    def __init__(self, streams: bool, subject: str) -> None:
        super().__init__(streams)
        self.subject = subject

    def feed(self, line: bytes) -> Chunk | list[Chunk] | None:
        line = line.strip()
        if not line.startswith(b"data:"):
            return None
        data = line[5:].strip()
        if data == b"[DONE]":
            self.finished = True
            return None
        event = orjson.loads(data)
        if "error" in event:
            error = event["error"] or {}
            raise ProviderError(f"{self.subject} failed mid-answer: {error.get('message')}")
        model = event.get("model")
        choices = event.get("choices")
        usage = event.get("usage")
        if choices and len(choices) == 1:  # as OpenAI sends them: one choice an event
            chunk = _piece(choices[0], model)
        elif choices:  # other servers may send several at once
            pieces = [p for c in choices if (p := _piece(c, model)) is not None]
            if len(pieces) > 1:
                if usage:
                    pieces[-1].usage = _usage(usage)
                return pieces
            chunk = pieces[0] if pieces else None
        else:  # the usage event of stream_options.include_usage
            chunk = None
        if usage:
            if chunk is None:
                chunk = Chunk(model=model)
            chunk.usage = _usage(usage)
        return chunk

    def whole(self, body: bytes) -> Chunk | list[Chunk]:
        answer: dict[str, Any] = orjson.loads(body)
        model = answer.get("model")
        chunks = []
        for position, choice in enumerate(answer.get("choices") or [{}]):
            message = choice.get("message") or {}
            chunk = Chunk(
                text=message.get("content") or "",
                finish_reason=choice.get("finish_reason") or "stop",
                model=model,
                choice=choice.get("index", position),
            )
            if calls := message.get("tool_calls"):
                chunk.tool_calls = _call_deltas(calls)
            if (logprobs := choice.get("logprobs")) and (content := logprobs.get("content")):
                chunk.logprobs = content
            chunks.append(chunk)
        chunks[-1].usage = _usage(answer.get("usage") or {})
        return chunks[0] if len(chunks) == 1 else chunks
