"""Anthropic's Messages API on chatgate: `POST /v1/messages` (`model` names an assistant) and
`POST /v1/messages/count_tokens`, in Anthropic's shapes, streaming events and errors included.

Stateless like Anthropic's: the client sends the conversation; nothing is stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.responses import StreamingResponse

from chatgate.anthropic_compat.deps import Caller, RuntimeParts
from chatgate.anthropic_compat.errors import AnthropicErrorRoute, request_id
from chatgate.anthropic_compat.events import message_events
from chatgate.anthropic_compat.schemas import CountTokensRequest, MessagesRequest
from chatgate.anthropic_compat.service import complete, open_message_call
from chatgate.core.responses import JSONBytes
from chatgate.dialects.marks import answer_headers
from chatgate.dialects.stream import open_stream
from chatgate.providers.fallback import Provenance

router = APIRouter(prefix="/v1", tags=["anthropic"], route_class=AnthropicErrorRoute)


def _body(description: str, required: list[str]) -> dict[str, Any]:
    """The request body as documented: the route parses it itself (below)."""
    schema = {"type": "object", "required": required, "description": description}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An Anthropic `message`, or with `stream` a server-sent stream of its "
        "events (message_start … message_stop, or an `error` event)."
    }
}


@router.post(
    "/messages",
    response_class=Response,
    responses=_ANSWERS,
    openapi_extra=_body(
        "Anthropic's Messages request; `model` names an assistant.",
        ["model", "max_tokens", "messages"],
    ),
)
async def create_message(request: Request, user: Caller, parts: RuntimeParts) -> Response:
    """Anthropic's Messages API; `model` names an assistant."""
    # pydantic's own JSON parser: it refuses lone surrogates, which no engine can be sent.
    body = MessagesRequest.model_validate_json(await request.body())
    call = await open_message_call(parts, user, body)
    model = call.assistant.id
    if not body.stream:
        message = await complete(call, model=model)
        marks = Provenance(message["chatgate_provider"], message["chatgate_fallback"])
        headers = {**answer_headers(marks), **call.guard.marks, **request_id()}
        return JSONBytes(message, headers=headers)
    first, chunks, headers = await open_stream(call)
    events = message_events(first, chunks, call=call, model=model)
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**headers, **request_id()}
    )


@router.post(
    "/messages/count_tokens",
    openapi_extra=_body(
        "Anthropic's token-count request: a message's, without `max_tokens`.",
        ["model", "messages"],
    ),
)
async def count_tokens(request: Request, user: Caller, parts: RuntimeParts) -> JSONBytes:
    """Anthropic's token count of a request: the prompt as the assistant's engine would get it
    (its system prompt included, the context fitted), counted as the token limit counts it.
    It is judged as the request would be: refused by name, over the context window, or past
    the caller's token limit alike."""
    body = CountTokensRequest.model_validate_json(await request.body())
    call = await open_message_call(parts, user, body)
    await call.meter.settle()  # judged against the budgets too, and nothing spent
    return JSONBytes({"input_tokens": call.meter.prompt_tokens}, headers=request_id())
