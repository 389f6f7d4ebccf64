"""OpenAI's own API on chatgate: `model` names an assistant, whose prompt, engine and limits apply.

Stateless like OpenAI's: the client sends the conversation; nothing is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from chatgate.assistants.schemas import Assistant
from chatgate.auth.service import acting_user
from chatgate.core.deps import Catalog, CurrentUser, DatabaseDep, Providers
from chatgate.core.errors import AppError, NotFound
from chatgate.core.responses import JSONBytes
from chatgate.openai_compat.errors import OpenAIErrorRoute
from chatgate.openai_compat.schemas import ChatCompletionRequest
from chatgate.openai_compat.service import (
    answer_headers,
    complete,
    completion_events,
    completion_request,
    guard_completion,
)
from chatgate.providers.fallback import Provenance

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrorRoute)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _model(assistant: Assistant) -> dict[str, Any]:
    return {"id": assistant.id, "object": "model", "created": 0, "owned_by": "chatgate"}


async def _assistant(catalog: Catalog, model: str) -> Assistant:
    try:
        return await catalog.get(model)
    except NotFound:
        raise NotFound(f"The model '{model}' does not exist", code="model_not_found") from None


@router.get("/models")
async def list_models(catalog: Catalog, _: CurrentUser) -> dict[str, Any]:
    return {"object": "list", "data": [_model(a) for a in await catalog.enabled()]}


@router.get("/models/{model_id}")
async def get_model(model_id: str, catalog: Catalog, _: CurrentUser) -> dict[str, Any]:
    return _model(await _assistant(catalog, model_id))


async def _completion_body(request: Request) -> ChatCompletionRequest:
    # Bytes straight into Pydantic's JSON parser: a third cheaper than FastAPI's json-then-validate.
    try:
        return ChatCompletionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


COMPLETION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "messages"],
                    "description": "OpenAI's chat-completions request; `model` names an assistant.",
                }
            }
        },
    }
}


@router.post("/chat/completions", openapi_extra=COMPLETION_BODY)
async def chat_completions(
    body: Annotated[ChatCompletionRequest, Depends(_completion_body)],
    user: CurrentUser,
    catalog: Catalog,
    providers: Providers,
    database: DatabaseDep,
) -> Response:
    assistant = await _assistant(catalog, body.model)
    if user.is_service and body.user:
        user = acting_user(user, body.user)
    body, guard = await guard_completion(body, assistant=assistant, database=database, user=user)
    provider = guard.wrap(providers.for_assistant(assistant, private=guard.private))
    request = completion_request(body, assistant=assistant, provider=provider, user=user)
    if not body.stream:
        reply = await complete(provider, request, model=assistant.id)
        marks = Provenance(reply["chatgate_provider"], reply["chatgate_fallback"])
        return JSONBytes(reply, headers=answer_headers(marks))
    chunks = provider.stream(request)
    # The first piece comes before the headers, so an engine that fails early gets its status.
    first = await anext(chunks, None)
    if first is None:
        raise AppError("the engine returned no answer", code="upstream_error", status=502)
    # The fallback chain's first piece already comes from the engine (or answer) that answers.
    source = Provenance(provider.id)
    source.see(first)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = completion_events(
        first, chunks, model=assistant.id, include_usage=include_usage, source=source
    )
    headers = {**SSE_HEADERS, **answer_headers(source)}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
