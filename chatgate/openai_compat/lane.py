"""`POST /v1/chat/completions`, the gateway's busiest endpoint, as a bare ASGI app that the front
door (`chatgate.gateway.front`) calls directly: the same auth, limits, guards, engines and OpenAI
error shapes as a FastAPI route, without FastAPI's per-request routing and dependency solving,
which were a third of this endpoint's CPU (docs/benchmarks.md, "Gateway").

Stateless like OpenAI's: the client sends the conversation; nothing is stored."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from chatgate.auth.deps import request_user
from chatgate.auth.service import User
from chatgate.core.errors import AppError, TooLarge
from chatgate.core.parts import Parts, parts_of
from chatgate.core.responses import JSONBytes
from chatgate.dialects.call import open_call
from chatgate.dialects.marks import answer_headers
from chatgate.dialects.stream import open_stream
from chatgate.openai_compat.errors import openai_failure
from chatgate.openai_compat.schemas import ChatCompletionRequest
from chatgate.openai_compat.service import complete, completion_events
from chatgate.openai_compat.translate import engine_request
from chatgate.providers.fallback import Provenance

MAX_BODY_BYTES = 20 * 1024 * 1024  # a whole conversation, images included (OpenAI takes 20 MB)

OPENAPI: dict[str, Any] = {
    "post": {
        "tags": ["openai"],
        "summary": "Chat Completions",
        "description": "OpenAI's chat-completions API; `model` names an assistant.",
        "operationId": "chat_completions_v1_chat_completions_post",
        "security": [{"HTTPBearer": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["model", "messages"],
                        "description": "OpenAI's chat-completions request.",
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "A `chat.completion`, or with `stream` a server-sent stream of "
                "`chat.completion.chunk` events ending with `[DONE]`."
            }
        },
    }
}


class ChatCompletions:
    path = "/v1/chat/completions"
    methods = frozenset({"POST"})
    openapi = OPENAPI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._respond(scope, receive)
        except (AppError, ValidationError) as exc:
            response = openai_failure(exc)
        await response(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive) -> Response:
        parts = parts_of(scope["app"])
        headers = Headers(scope=scope)
        user = await request_user(parts, headers, scope.setdefault("state", {}))
        body = ChatCompletionRequest.model_validate_json(await _read_body(receive))
        return await _answer(body, user, parts)


async def _answer(body: ChatCompletionRequest, user: User, parts: Parts) -> Response:
    call = await open_call(parts, user, engine_request(body), surface="openai")
    model = call.assistant.id
    if not body.stream:
        reply = await complete(call, model=model)
        marks = Provenance(reply["chatgate_provider"], reply["chatgate_fallback"])
        return JSONBytes(reply, headers={**answer_headers(marks), **call.guard.marks})
    first, chunks, headers = await open_stream(call)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = completion_events(first, chunks, call=call, model=model, include_usage=include_usage)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away; nothing will be sent back
        part = message.get("body", b"")
        size += len(part)
        if size > MAX_BODY_BYTES:
            raise TooLarge(f"the request body is over {MAX_BODY_BYTES} bytes", code="too_large")
        parts.append(part)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)
