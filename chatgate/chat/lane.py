"""`GET /v1/history/{session_id}`, the service's hottest read, as a bare ASGI app that the front
door (`chatgate.gateway.front`) calls directly, past FastAPI's routing and dependency solving:
the same caller, limits, checks, errors and JSON as the route declared in `chat/router.py`,
which documents the endpoint (the lane shadows it), plus the page's ETag and 304s. The page
itself, its ETag and the pages kept are `chat/history.py`'s."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chatgate.auth.deps import request_user
from chatgate.chat.history import PageCache, page_response, read_page
from chatgate.core.db import Database
from chatgate.core.errors import AppError, error_response, validation_failure
from chatgate.core.ids import parse_id
from chatgate.core.parts import parts_of
from chatgate.vault.service import Vault

PREFIX = "/v1/history/"


class HistoryQuery(BaseModel):
    """The route's query parameters, checked as FastAPI checks them (the same errors)."""

    limit: int = Field(50, ge=1, le=200)
    before: str | None = None


class HistoryLane:
    path = PREFIX + "{session_id}"
    methods = frozenset({"GET"})

    def __init__(self) -> None:
        self.openapi: dict[str, Any] = {}  # the route's own (chat/router.py) documents it
        self.pages = PageCache()  # this process's, as the app is

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._respond(scope)
        except AppError as exc:
            response = error_response(exc)
        await response(scope, receive, send)

    async def _respond(self, scope: Scope) -> Response:
        parts = parts_of(scope["app"])
        headers = Headers(scope=scope)
        user = await request_user(parts, headers, scope.setdefault("state", {}))
        raw = scope["query_string"]
        try:
            # The usual `?limit=50` without building a model; anything else through it.
            if raw == b"limit=50":
                query = _USUAL
            else:
                query = HistoryQuery.model_validate(dict(QueryParams(raw)))
        except ValidationError as exc:
            errors = [{**err, "loc": ("query", *err["loc"])} for err in exc.errors()]
            return validation_failure(errors)
        session_id = parse_id(scope["path"][len(PREFIX) :], what="session_id")
        before = parse_id(query.before, what="before") if query.before else None
        await parts.get(Vault).enter(user.id)  # pages are opened with their owner's key
        read = await read_page(
            parts.get(Database), user=user, session_id=session_id, limit=query.limit,
            before=before, if_none_match=headers.get("if-none-match"), pages=self.pages,
        )  # fmt: skip
        return page_response(read)


_USUAL = HistoryQuery()
