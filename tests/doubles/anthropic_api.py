"""A stand-in for Anthropic's Messages API (`POST /v1/messages`), following its published
request rules (headers, alternating roles, a top-level `system`, content blocks: images, tool_use
and tool_result, tools and tool_choice), stream events and error shapes. What it does is chosen by
a directive in the last user message:

  [[slow N SECONDS]]        stream N text deltas, SECONDS apart
  [[die-after N]]           stream N text deltas, then drop the connection before message_stop
  [[status CODE]]           answer with an HTTP error of that status, in Anthropic's error shape
  [[error-after N TYPE]]    stream N text deltas, then an `error` event of that type
  [[hang]]                  never answer
otherwise it answers "echo: <the message>", a word per delta (cut at the first of the
`stop_sequences` it contains, then at max_tokens); images are echoed as "[image image/png 67
bytes]" or "[image <url>]", a tool_result as its content.

With `tools`, a tool_choice other than none, and no tool_result in the last user message, it calls
tools instead (stop_reason tool_use), each input built from the tool's input_schema: the forced
tool, else the first, or

  [[call NAME]]             that tool
  [[call-all]]              every tool, unless disable_parallel_tool_use
  [[preface]]               a text block before the calls (tool_choice auto only, as the model)
A streamed call is a content_block_start (input {}), input_json_delta pieces of a few characters
and a content_block_stop.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.doubles.anthropic_blocks import (
    Invalid,
    Message,
    check_tool_pairs,
    read_message,
    read_tools,
    text_of,
    tool_use,
    tools_called,
)

DIRECTIVE = re.compile(r"\[\[(\w[\w-]*)((?:\s+[\w.-]+)*)\]\]")
# Directives about the answer's transport, which no tool call stands in for.
TRANSPORT = ("slow", "die-after", "status", "error-after", "hang")
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


def validate(body: Any) -> tuple[list[Message], list[dict[str, Any]], dict[str, Any]]:
    """The checks the Messages API makes; returns the messages as the double reads them, the
    tools and the tool choice."""
    if not isinstance(body, dict):
        raise Invalid("body: Input should be an object")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise Invalid(f"{name}: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not 0 <= value <= 1:
            raise Invalid(f"{name}: Input should be less than or equal to 1")
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops):
        raise Invalid("stop_sequences: each stop sequence must contain non-whitespace")
    if "system" in body:
        text_of(body["system"], "system")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    turns: list[Message] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "system":
            raise Invalid(
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a '
                'top-level `system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        turn = read_message(role, content, f"messages.{i}")
        last_assistant = i == len(messages) - 1 and role == "assistant"
        empty = not content.strip() if isinstance(content, str) else not content
        if empty and not last_assistant:
            raise Invalid(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        if turns and turns[-1].role == role:
            raise Invalid(
                'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{role}" roles in a row'
            )
        turns.append(turn)
    if turns[0].role != "user":
        raise Invalid('messages: first message must use the "user" role')
    tools, choice = read_tools(body)
    check_tool_pairs(turns, tools)
    return turns, tools, choice


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
    # The tokens its answers' `usage` reported (input, output), to check a meter against.
    served: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})

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
            turns, tools, choice = validate(body)
        except Invalid as exc:
            return self.error(400, str(exc))
        last = turns[-1] if turns[-1].role == "user" else Message("user", "")
        directives = {m.group(1): m.group(2).split() for m in DIRECTIVE.finditer(last.text)}
        match = DIRECTIVE.search(last.text)
        name, args = (match.group(1), match.group(2).split()) if match else ("echo", [])
        if name == "status":
            return self.error(int(args[0]))
        if name == "hang":
            await hang(request)
        system = text_of(body.get("system", ""), "system")
        input_tokens = len(system.split()) + sum(len(turn.text.split()) for turn in turns)
        if tools and choice["type"] != "none" and not last.tool_results and name not in TRANSPORT:
            answer = _tool_answer(body, tools, choice, directives, last.text)
        else:
            answer = _text_answer(body, name, args, last.text)
        answer.input_tokens = input_tokens
        self.served["prompt"] += input_tokens
        self.served["completion"] += answer.output_tokens()
        if not body.get("stream"):
            return web.json_response(answer.message(final=True))
        delay = float(args[1]) if name == "slow" and len(args) > 1 else 0.0
        error = (
            (args[1] if len(args) > 1 else "overloaded_error") if name == "error-after" else None
        )
        return await answer.stream(request, delay, die=name == "die-after", error=error)


def _text_answer(body: dict[str, Any], name: str, args: list[str], last: str) -> _Answer:
    words = (
        [f"w{i} " for i in range(int(args[0]))]
        if name in ("slow", "die-after", "error-after")
        else f"echo: {last}".split(" ")
    )
    pieces = [w if w.endswith(" ") or i == len(words) - 1 else w + " " for i, w in enumerate(words)]
    answer = _Answer(body, [pieces])
    text = "".join(pieces)
    # Cut at the stop sequence found first in the answer, as the model stops generating there.
    cuts = [(text.find(s), s) for s in body.get("stop_sequences", []) if s in text]
    if cuts:
        at, answer.stop_sequence = min(cuts)
        pieces = re.findall(r"[^ ]+ *| +", text[:at])
        answer.blocks, answer.stop_reason = [pieces], "stop_sequence"
    if len(pieces) > body["max_tokens"]:
        answer.blocks, answer.stop_reason = [pieces[: body["max_tokens"]]], "max_tokens"
        answer.stop_sequence = None
    return answer


def _tool_answer(
    body: dict[str, Any],
    tools: list[dict[str, Any]],
    choice: dict[str, Any],
    directives: dict[str, list[str]],
    last: str,
) -> _Answer:
    words = re.findall(r"[\w-]+", DIRECTIVE.sub(" ", last))
    blocks: list[list[str] | dict[str, Any]] = [
        tool_use(tool, words) for tool in tools_called(tools, choice, directives)
    ]
    if "preface" in directives and choice["type"] == "auto":
        # With `auto` the model may think aloud first; `any` and `tool` prefill the answer,
        # so it never does there.
        names = " and ".join(str(b["name"]) for b in blocks if isinstance(b, dict))
        blocks.insert(0, ["Let ", "me ", "call ", names + "."])
    return _Answer(body, blocks, stop_reason="tool_use")


@dataclass
class _Answer:
    body: dict[str, Any]
    # Text blocks as their streamed pieces; tool_use blocks whole.
    blocks: list[list[str] | dict[str, Any]]
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    input_tokens: int = 0
    id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex[:24]}")

    def content(self) -> list[dict[str, Any]]:
        return [
            {"type": "text", "text": "".join(block)} if isinstance(block, list) else block
            for block in self.blocks
            if block
        ]

    def output_tokens(self) -> int:
        return sum(
            len(block) if isinstance(block, list) else len(fragments(block["input"]))
            for block in self.blocks
        )

    def message(self, *, final: bool) -> dict[str, Any]:
        content = self.content() if final else []
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.body["model"],
            "content": content,
            "stop_reason": self.stop_reason if final else None,
            "stop_sequence": self.stop_sequence if final else None,
            "usage": {
                "input_tokens": self.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": self.output_tokens() if final else 1,
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
            await event("message_start", {"message": self.message(final=False)})
            for index, block in enumerate(self.blocks):
                if isinstance(block, dict):
                    start = {**block, "input": {}}
                    await event("content_block_start", {"index": index, "content_block": start})
                    for fragment in fragments(block["input"]):
                        delta = {"type": "input_json_delta", "partial_json": fragment}
                        await event("content_block_delta", {"index": index, "delta": delta})
                    await event("content_block_stop", {"index": index})
                    continue
                text = {"type": "text", "text": ""}
                await event("content_block_start", {"index": index, "content_block": text})
                if index == 0:
                    await event("ping", {})
                for piece in block:
                    if delay:
                        await asyncio.sleep(delay)
                    delta = {"type": "text_delta", "text": piece}
                    await event("content_block_delta", {"index": index, "delta": delta})
                if die:
                    # A moment after the last event: aiohttp drops what a client has received
                    # but not yet read once the connection breaks, which would make the test a
                    # race.
                    await asyncio.sleep(0.3)
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if error:
                    detail = {"type": error, "message": MESSAGES.get(error, "Error")}
                    await event("error", {"error": detail})
                    await response.write_eof()
                    return response
                await event("content_block_stop", {"index": index})
            await event(
                "message_delta",
                {
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
                    "usage": {"output_tokens": self.output_tokens()},
                },
            )
            await event("message_stop", {})
            await response.write_eof()
        except ConnectionResetError:
            pass  # the caller went away
        return response


def fragments(value: dict[str, Any]) -> list[str]:
    """A tool's input as the API streams it: an empty piece first, then its JSON in pieces of a
    few characters; an empty input is that empty piece alone (never "{}")."""
    text = json.dumps(value) if value else ""
    return ["", *(text[i : i + 5] for i in range(0, len(text), 5))]
