"""OpenAI's Responses API on chatgate: `POST /v1/responses` (streaming included),
`GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`, `DELETE /v1/responses/{id}`,
with OpenAI's error envelope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.responses import StreamingResponse

from chatgate.auth.deps import CurrentUser
from chatgate.core.deps import DbSession
from chatgate.core.parts import parts_of
from chatgate.core.responses import JSONBytes
from chatgate.dialects.marks import answer_headers
from chatgate.dialects.stream import open_stream
from chatgate.openai_compat.errors import OpenAIErrorRoute, openai_failure
from chatgate.providers.fallback import Provenance
from chatgate.responses import service, store
from chatgate.responses.input_items import Order, input_items
from chatgate.responses.schemas import ResponseRequest

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrorRoute)

REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "input"],
                    "description": "OpenAI's Responses request; `model` names an assistant.",
                }
            }
        },
    }
}


@router.post("/responses", openapi_extra=REQUEST_BODY)
async def create_response(request: Request, user: CurrentUser) -> Response:
    """OpenAI's Responses API; `previous_response_id` continues a stored conversation."""
    try:
        # pydantic's own JSON parser: it refuses lone surrogates, which no database stores.
        body = ResponseRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        return openai_failure(exc)
    parts = parts_of(request.app)
    prep = await service.prepare(parts, user, body)
    marks = prep.call.guard.marks
    if not body.stream:
        reply = await service.answer_whole(parts, prep)
        source = Provenance(reply["chatgate_provider"], reply["chatgate_fallback"])
        return JSONBytes(reply, headers={**answer_headers(source), **marks})
    first, chunks, headers = await open_stream(prep.call)
    events = service.answer_stream(parts, prep, first, chunks)
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


@router.get("/responses/{response_id}")
async def get_response(response_id: str, db: DbSession, user: CurrentUser) -> JSONBytes:
    """A stored response, as it was answered."""
    row = await store.owned_response(db, user=user, response_id=response_id)
    return JSONBytes(row.body)


@router.get("/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    db: DbSession,
    user: CurrentUser,
    order: Order = "desc",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=80)] = None,
) -> JSONBytes:
    """A stored response's input items (OpenAI's list, newest first unless `order=asc`)."""
    page = await input_items(
        db, user=user, response_id=response_id, order=order, limit=limit, after=after
    )
    return JSONBytes(page)


@router.delete("/responses/{response_id}")
async def delete_response(response_id: str, db: DbSession, user: CurrentUser) -> dict[str, Any]:
    """Deletes a stored response and the messages it added to its conversation."""
    await store.delete_response(db, user=user, response_id=response_id)
    return {"id": response_id, "object": "response", "deleted": True}
