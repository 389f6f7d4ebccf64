"""OpenAI's model list on chatgate: each enabled assistant is a model, and so is each embedder
(`openai_compat/embeddings/`). Chat completions are served by `chatgate.openai_compat.lane`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatgate.assistants.deps import Catalog
from chatgate.assistants.schemas import Assistant
from chatgate.auth.deps import CurrentUser
from chatgate.core.errors import NotFound
from chatgate.dialects.call import assistant_for_model
from chatgate.openai_compat.embeddings.deps import Config
from chatgate.openai_compat.embeddings.service import embedder_model, embedder_models
from chatgate.openai_compat.errors import OpenAIErrorRoute

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrorRoute)


def _model(assistant: Assistant) -> dict[str, Any]:
    return {"id": assistant.id, "object": "model", "created": 0, "owned_by": "chatgate"}


@router.get("/models")
async def list_models(catalog: Catalog, settings: Config, _: CurrentUser) -> dict[str, Any]:
    assistants = [_model(a) for a in await catalog.enabled()]
    embedders = embedder_models(settings, taken={a["id"] for a in assistants})
    return {"object": "list", "data": [*assistants, *embedders]}


@router.get("/models/{model_id}")
async def get_model(
    model_id: str, catalog: Catalog, settings: Config, _: CurrentUser
) -> dict[str, Any]:
    try:
        return _model(await assistant_for_model(catalog, model_id))
    except NotFound:
        if (embedder := embedder_model(settings, model_id)) is not None:
            return embedder
        raise
