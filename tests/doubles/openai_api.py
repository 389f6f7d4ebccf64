"""A stand-in for OpenAI's chat-completions API, following its published request, stream and
error formats. What it does is chosen by a directive in the last user message:

  [[slow N SECONDS]]  stream N chunks, SECONDS apart
  [[die-after N]]     stream N chunks, then drop the connection without `data: [DONE]`
  [[status CODE]]     answer with an error of that HTTP status, in OpenAI's error shape
  [[hang]]            never answer
  [[nul]]             answer text with a NUL character in it (some engines emit them)
otherwise it answers "echo: <the message>", a word per chunk.

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

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.")
        body = await request.json()
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername")[:2])
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        match = DIRECTIVE.search(last)
        name, args = (match.group(1), match.group(2).split()) if match else ("echo", [])
        if name == "status":
            return self.error(int(args[0]), f"The double was told to answer {args[0]}.")
        if name == "hang":
            await asyncio.sleep(3600)
        words = (
            [f"w{i} " for i in range(int(args[0]))]
            if name in ("slow", "die-after")
            else ["before\x00", "after"]
            if name == "nul"
            else (f"echo: {last}".split(" "))
        )
        pieces = [
            w if w.endswith(" ") or i == len(words) - 1 else w + " " for i, w in enumerate(words)
        ]
        delay = float(args[1]) if name == "slow" and len(args) > 1 else 0.0
        if not body.get("stream"):
            return web.json_response(self.completion(body, "".join(pieces)))
        return await self.stream(request, body, pieces, delay, die=name == "die-after")

    def completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-double",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(body, len(text.split())),
        }

    @staticmethod
    def usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }

    async def stream(
        self, request: web.Request, body: dict[str, Any], pieces: list[str], delay: float, die: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                "id": "chatcmpl-double",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        await response.write(chunk({"role": "assistant", "content": ""}))
        for piece in pieces:
            if delay:
                await asyncio.sleep(delay)
            await response.write(chunk({"content": piece}))
        if die:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "id": "chatcmpl-double",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [],
                "usage": self.usage(body, len(pieces)),
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
