"""OpenAI's own API on chatgate: `model` names an assistant, whose prompt, engine and limits apply.

Stateless like OpenAI's: the client sends the conversation; nothing is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from chatgate.assistants.schemas import Assistant
from chatgate.core.deps import Catalog, CurrentUser, Providers
from chatgate.core.errors import AppError, NotFound
from chatgate.core.responses import JSONBytes
from chatgate.openai_compat.errors import OpenAIErrorRoute
from chatgate.openai_compat.schemas import ChatCompletionRequest
from chatgate.openai_compat.service import complete, completion_events, completion_request

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


@router.post("/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, user: CurrentUser, catalog: Catalog, providers: Providers
) -> Response:
    assistant = await _assistant(catalog, body.model)
    provider = providers.for_assistant(assistant)
    request = completion_request(body, assistant=assistant, provider=provider, user=user)
    if not body.stream:
        return JSONBytes(await complete(provider, request, model=assistant.id))
    chunks = provider.stream(request)
    # The first piece comes before the headers, so an engine that fails early gets its status.
    first = await anext(chunks, None)
    if first is None:
        raise AppError("the engine returned no answer", code="upstream_error", status=502)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = completion_events(first, chunks, model=assistant.id, include_usage=include_usage)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
