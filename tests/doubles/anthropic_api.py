"""A stand-in for Anthropic's Messages API (`POST /v1/messages`), following its published
request rules (headers, alternating roles, a top-level `system`), stream events and error shapes.
What it does is chosen by a directive in the last user message:

  [[slow N SECONDS]]        stream N text deltas, SECONDS apart
  [[die-after N]]           stream N text deltas, then drop the connection before message_stop
  [[status CODE]]           answer with an HTTP error of that status, in Anthropic's error shape
  [[error-after N TYPE]]    stream N text deltas, then an `error` event of that type
  [[hang]]                  never answer
otherwise it answers "echo: <the message>", a word per delta (cut at max_tokens).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DIRECTIVE = re.compile(r"\[\[(\w[\w-]*)((?:\s+[\w.]+)*)\]\]")
ERROR_TYPES = {
    400: ("invalid_request_error", "There was an issue with the format of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "model: not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "The request timed out."),
    529: ("overloaded_error", "Overloaded"),
}
MESSAGES = {kind: message for kind, message in ERROR_TYPES.values()}


class Invalid(Exception):
    """A request Anthropic would refuse with 400 invalid_request_error."""


def text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) for b in content):
        return "".join(b.get("text", "") for b in content if b.get("type") == "text")
    raise Invalid(f"{where}.content: Input should be a valid string or list of content blocks")


def validate(body: Any) -> list[tuple[str, str]]:
    """The checks the Messages API makes; returns the turns as (role, text)."""
    if not isinstance(body, dict):
        raise Invalid("body: Input should be an object")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise Invalid(f"{name}: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise Invalid("temperature: Input should be less than or equal to 1")
    if "system" in body:
        text_of(body["system"], "system")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "system":
            raise Invalid(
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a '
                'top-level `system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        text = text_of(message.get("content"), f"messages.{i}")
        last_assistant = i == len(messages) - 1 and role == "assistant"
        if not text.strip() and not last_assistant:
            raise Invalid(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        if turns and turns[-1][0] == role:
            raise Invalid(
                'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{role}" roles in a row'
            )
        turns.append((role, text))
    if turns[0][0] != "user":
        raise Invalid('messages: first message must use the "user" role')
    return turns


async def hang(request: web.Request) -> None:
    """Never answers, until the caller gives up (so no handler outlives the test)."""
    # aiohttp offers a handler no event for a disconnect, so it looks.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


@dataclass
class AnthropicDouble:
    api_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        return app

    @staticmethod
    def error(status: int, message: str | None = None) -> web.Response:
        kind, default = ERROR_TYPES.get(status, ("api_error", "Internal server error"))
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        body = {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": request_id,
        }
        headers = {"request-id": request_id}
        if status == 429:
            headers["retry-after"] = "2"
        return web.json_response(body, status=status, headers=headers)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-api-key")
        if not key:
            return self.error(401, "x-api-key header is required")
        if self.api_key and key != self.api_key:
            return self.error(401)
        if not request.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self.error(400, "The request body is not valid JSON.")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        try:
            turns = validate(body)
        except Invalid as exc:
            return self.error(400, str(exc))
        last = turns[-1][1] if turns[-1][0] == "user" else ""
        match = DIRECTIVE.search(last)
        name, args = (match.group(1), match.group(2).split()) if match else ("echo", [])
        if name == "status":
            return self.error(int(args[0]))
        if name == "hang":
            await hang(request)
        words = (
            [f"w{i} " for i in range(int(args[0]))]
            if name in ("slow", "die-after", "error-after")
            else f"echo: {last}".split(" ")
        )
        pieces = [
            w if w.endswith(" ") or i == len(words) - 1 else w + " " for i, w in enumerate(words)
        ]
        stop_reason = "end_turn"
        if len(pieces) > body["max_tokens"]:
            pieces, stop_reason = pieces[: body["max_tokens"]], "max_tokens"
        system = text_of(body.get("system", ""), "system")
        input_tokens = len(system.split()) + sum(len(text.split()) for _, text in turns)
        answer = _Answer(body, pieces, stop_reason, input_tokens)
        if not body.get("stream"):
            return web.json_response(answer.message("".join(pieces), len(pieces)))
        delay = float(args[1]) if name == "slow" and len(args) > 1 else 0.0
        error = (
            (args[1] if len(args) > 1 else "overloaded_error") if name == "error-after" else None
        )
        return await answer.stream(request, delay, die=name == "die-after", error=error)


@dataclass
class _Answer:
    body: dict[str, Any]
    pieces: list[str]
    stop_reason: str
    input_tokens: int
    id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex[:24]}")

    def message(self, text: str, output_tokens: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.body["model"],
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": self.stop_reason if text else None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
            },
        }

    async def stream(
        self, request: web.Request, delay: float, *, die: bool, error: str | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": f"req_{uuid.uuid4().hex[:24]}",
            }
        )
        await response.prepare(request)

        async def event(kind: str, data: dict[str, Any]) -> None:
            payload = json.dumps({"type": kind, **data})
            await response.write(f"event: {kind}\ndata: {payload}\n\n".encode())

        try:
            await event("message_start", {"message": self.message("", 1)})
            await event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            await event("ping", {})
            for piece in self.pieces:
                if delay:
                    await asyncio.sleep(delay)
                delta = {"type": "text_delta", "text": piece}
                await event("content_block_delta", {"index": 0, "delta": delta})
            if die:
                # A moment after the last event: aiohttp drops what a client has received but not
                # yet read once the connection breaks, which would make the test a race.
                await asyncio.sleep(0.3)
                assert request.transport is not None
                request.transport.close()
                return response
            if error:
                detail = {"type": error, "message": MESSAGES.get(error, "Error")}
                await event("error", {"error": detail})
                await response.write_eof()
                return response
            await event("content_block_stop", {"index": 0})
            await event(
                "message_delta",
                {
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": len(self.pieces)},
                },
            )
            await event("message_stop", {})
            await response.write_eof()
        except ConnectionResetError:
            pass  # the caller went away
        return response
