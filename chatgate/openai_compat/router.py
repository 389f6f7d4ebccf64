"""OpenAI's model list on chatgate: each enabled assistant is a model. Chat completions are served
by `chatgate.openai_compat.lane`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chatgate.assistants.deps import Catalog
from chatgate.assistants.schemas import Assistant
from chatgate.auth.deps import CurrentUser
from chatgate.openai_compat.errors import OpenAIErrorRoute
from chatgate.openai_compat.service import assistant_for_model

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrorRoute)


def _model(assistant: Assistant) -> dict[str, Any]:
    return {"id": assistant.id, "object": "model", "created": 0, "owned_by": "chatgate"}


@router.get("/models")
async def list_models(catalog: Catalog, _: CurrentUser) -> dict[str, Any]:
    return {"object": "list", "data": [_model(a) for a in await catalog.enabled()]}


@router.get("/models/{model_id}")
async def get_model(model_id: str, catalog: Catalog, _: CurrentUser) -> dict[str, Any]:
    return _model(await assistant_for_model(catalog, model_id))
