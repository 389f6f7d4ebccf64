"""A stand-in for OpenAI's chat-completions API, following its published request, stream and
error formats. What it does is chosen by a directive in the last user message:

  [[slow N SECONDS]]  stream N chunks, SECONDS apart
  [[die-after N]]     stream N chunks, then drop the connection without `data: [DONE]`
  [[status CODE]]     answer with an error of that HTTP status, in OpenAI's error shape
  [[hang]]            never answer
  [[nul]]             answer text with a NUL character in it (some engines emit them)
  [[system]]          answer "system: " and the text of the system messages it was sent
otherwise it answers "echo: <the message>", a word per chunk, its images and audio mentioned
("[image image/png 67 bytes]", "[image https://host/a.png]", "[audio wav 44 bytes]").

Beyond text (the rules are openai_answers.py's):
  tools              with `tool_choice` not "none" and a user message last, it calls a tool
                     instead of answering: the function `tool_choice` names, else the first tool,
                     or the one `[[call NAME]]` names, or every tool for `[[call-all]]` (one if
                     `parallel_tool_calls` is false); arguments built from the tool's schema,
                     streamed a few characters at a time, finish_reason "tool_calls"
  a tool message     last: "echo: " and the contents of the tool messages that end the
                     conversation; a tool message answering no earlier call is refused (400)
  response_format    json_schema: a JSON document valid for the schema; json_object: {"echo": …}
  stop               the answer ends before the first stop sequence
  logprobs           an entry for each piece, with `top_logprobs` alternatives
  n                  n choices, streamed one choice an event; choice k > 0 begins "(k) "
A data: image that is not base64 of a PNG, JPEG, GIF or WEBP is refused as OpenAI refuses it.

`POST /v1/embeddings` follows OpenAI's embeddings API: `input` a string or a list of strings
(none empty, at most 2048), `encoding_format` "float" (default) or "base64" (little-endian
float32), `dimensions` optional. Each vector is a bag of the text's words hashed into
`embedding_dimension` slots, deliberately not of unit length; a text holding `[[status CODE]]` or
`[[hang]]` makes the whole request do that.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from tests.doubles.openai_answers import (
    Answer,
    Call,
    Refusal,
    check_messages,
    cut_at_stop,
    describe,
    fragments,
    logprob_entries,
    split_words,
    structured,
    text_of,
    tool_calls,
)

DIRECTIVE = re.compile(r"\[\[(\w[\w-]*)((?:\s+[\d.]+)*)\]\]")
ERROR_TYPES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass
class OpenAIDouble:
    api_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)  # the connections requests came on
    embedding_dimension: int = 16
    embedding_requests: list[dict[str, Any]] = field(default_factory=list)
    # False: like some OpenAI-compatible servers, its chat answers carry no `usage`.
    report_usage: bool = True
    # The tokens its answers' `usage` reported, to check a meter against: chat, embeddings.
    served: dict[str, int] = field(
        default_factory=lambda: {"prompt": 0, "completion": 0, "embedding": 0}
    )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        kind, code = ERROR_TYPES.get(status, ("server_error", None))
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        headers = {"Retry-After": "2"} if status == 429 else None
        return web.json_response(body, status=status, headers=headers)

    @staticmethod
    def refuse(refusal: Refusal) -> web.Response:
        error = {
            "message": refusal.message,
            "type": "invalid_request_error",
            "param": refusal.param,
            "code": refusal.code,
        }
        return web.json_response({"error": error}, status=400)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.")
        body = await request.json()
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername")[:2])
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        messages = body["messages"]
        user = next((m for m in reversed(messages) if m["role"] == "user"), None)
        last = text_of(user["content"]) if user else ""
        match = DIRECTIVE.search(last)
        name, args = (match.group(1), match.group(2).split()) if match else ("echo", [])
        if name == "status":
            return self.error(int(args[0]), f"The double was told to answer {args[0]}.")
        if name == "hang":
            await asyncio.sleep(3600)
        try:
            check_messages(messages)
            answers = [
                self.answer(body, name, args, choice) for choice in range(body.get("n") or 1)
            ]
        except Refusal as refusal:
            return self.refuse(refusal)
        delay = float(args[1]) if name == "slow" and len(args) > 1 else 0.0
        if not body.get("stream"):
            return web.json_response(self.completion(body, answers))
        return await self.stream(request, body, answers, delay, die=name == "die-after")

    @staticmethod
    def answer(body: dict[str, Any], name: str, args: list[str], choice: int) -> Answer:
        """One choice's answer (choices after the first are told apart by a "(k) " prefix)."""
        messages = body["messages"]
        user = next((m for m in reversed(messages) if m["role"] == "user"), None)
        user_text = text_of(user["content"]) if user else ""
        final = messages[-1] if messages else {}
        if body.get("tools") and body.get("tool_choice") != "none" and final is user:
            return Answer(calls=tool_calls(body, user_text))
        if final.get("role") == "tool":
            results: list[str] = []
            for message in reversed(messages):
                if message["role"] != "tool":
                    break
                results.insert(0, text_of(message["content"]))
            pieces = split_words("echo: " + " ".join(results))
        elif name in ("slow", "die-after"):
            pieces = [f"w{i} " for i in range(int(args[0]))]
        elif name == "nul":
            pieces = ["before\x00 ", "after"]
        elif name == "system":
            system = [text_of(m["content"]) for m in messages if m["role"] == "system"]
            pieces = split_words("system: " + " | ".join(system))
        else:
            pieces = split_words("echo: " + describe(user["content"] if user else "", "content"))
        if (text := structured(body, "".join(pieces), user_text)) is not None:
            pieces = split_words(text)
        elif choice:
            pieces = [f"({choice}) ", *pieces]
        return Answer(pieces=cut_at_stop(pieces, body.get("stop")))

    @staticmethod
    def logprobs(body: dict[str, Any], pieces: list[str]) -> list[dict[str, Any]] | None:
        if not body.get("logprobs"):
            return None
        return logprob_entries(pieces, int(body.get("top_logprobs") or 0))

    def completion(self, body: dict[str, Any], answers: list[Answer]) -> dict[str, Any]:
        choices = []
        for index, answer in enumerate(answers):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if answer.calls else answer.text,
                "refusal": None,
            }
            if answer.calls:
                message["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in answer.calls
                ]
            entries = self.logprobs(body, answer.pieces)
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None if entries is None else {"content": entries, "refusal": None},
                    "finish_reason": answer.finish_reason,
                }
            )
        completion = sum(
            len(a.text.split()) + sum(len(fragments(c.arguments)) for c in a.calls) for a in answers
        )
        whole = {
            "id": "chatcmpl-double",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
        }
        return {**whole, "usage": self.usage(body, completion)} if self.report_usage else whole

    def usage(self, body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
        prompt = sum(len(text_of(m.get("content")).split()) for m in body["messages"])
        self.served["prompt"] += prompt
        self.served["completion"] += completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }

    def deltas(self, body: dict[str, Any], answer: Answer) -> list[dict[str, Any]]:
        """A choice's streamed deltas after its first (the role's): each text piece with its
        logprobs, or each call's name and then its arguments a few characters at a time."""
        if not answer.calls:
            entries = self.logprobs(body, answer.pieces)
            return [
                {
                    "delta": {"content": piece},
                    "logprobs": {"content": [entries[i]], "refusal": None},
                }
                if entries
                else {"delta": {"content": piece}}
                for i, piece in enumerate(answer.pieces)
            ]
        steps: list[dict[str, Any]] = []
        for index, call in enumerate(answer.calls):
            if index:
                steps.append({"delta": {"tool_calls": [self.call_start(index, call)]}})
            steps += [
                {"delta": {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}}
                for piece in fragments(call.arguments)
            ]
        return steps

    @staticmethod
    def call_start(index: int, call: Call) -> dict[str, Any]:
        function = {"name": call.name, "arguments": ""}
        return {"index": index, "id": call.id, "type": "function", "function": function}

    async def stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        answers: list[Answer],
        delay: float,
        die: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        created = int(time.time())

        def event(choice: int, step: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                "id": "chatcmpl-double",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "system_fingerprint": None,
                "choices": [
                    {"index": choice, "logprobs": None, "finish_reason": finish, **step},
                ],
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        # One choice an event, the choices' pieces in turn, as OpenAI streams `n` answers.
        for index, answer in enumerate(answers):
            first: dict[str, Any] = {"role": "assistant", "content": ""}
            if answer.calls:  # the role comes with the first call's name
                start = self.call_start(0, answer.calls[0])
                first = {**first, "content": None, "tool_calls": [start]}
            await response.write(event(index, {"delta": first}))
        steps = [self.deltas(body, answer) for answer in answers]
        for position in range(max(map(len, steps))):
            if delay:
                await asyncio.sleep(delay)
            for index, choice_steps in enumerate(steps):
                if position < len(choice_steps):
                    await response.write(event(index, choice_steps[position]))
        if die:
            assert request.transport is not None
            request.transport.close()
            return response
        for index, answer in enumerate(answers):
            await response.write(event(index, {"delta": {}}, answer.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage") and self.report_usage:
            usage = {
                "id": "chatcmpl-double",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [],
                "usage": self.usage(body, sum(map(len, steps))),
            }
            await response.write(f"data: {json.dumps(usage)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        # The body's end (the last chunk of the chunked encoding) comes a moment later, as
        # from servers that flush each event: a client must not take [DONE] for the end.
        await asyncio.sleep(0.002)
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.")
        try:
            body = await request.json()
        except ValueError:
            return self.error(400, "We could not parse the JSON body of your request.")
        self.embedding_requests.append(body)
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not body.get("model"):
            return self.error(400, "you must provide a model parameter")
        if not isinstance(texts, list) or not texts or len(texts) > 2048:
            return self.error(400, "'input' must be a string or an array of 1 to 2048 strings")
        if any(not isinstance(t, str) or not t for t in texts):
            return self.error(400, "'input' cannot contain an empty string")
        for text in texts:
            if match := DIRECTIVE.search(text):
                if match.group(1) == "status":
                    code = match.group(2).split()[0]
                    return self.error(int(code), f"The double was told to answer {code}.")
                if match.group(1) == "hang":
                    await asyncio.sleep(3600)
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return self.error(400, f"{encoding!r} is not one of ['float', 'base64']")
        dimension = int(body.get("dimensions") or self.embedding_dimension)
        data = []
        for index, text in enumerate(texts):
            vector = self.bag_of_words(text, dimension)
            embedding: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(t.split()) for t in texts)
        self.served["embedding"] += tokens
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @staticmethod
    def bag_of_words(text: str, dimension: int) -> np.ndarray[Any, Any]:
        vector = np.zeros(dimension, dtype=np.float32)
        vector[0] = 0.5  # never the zero vector
        for word in text.lower().split():
            slot = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            vector[slot % dimension] += 3.0
        return vector
