"""`Annotated` dependency aliases: the one way handlers get settings, database, user and engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers, State

from chatgate.assistants.service import AssistantCatalog
from chatgate.auth.service import User, acting_user
from chatgate.core.config import Settings
from chatgate.core.db import Database
from chatgate.core.errors import BadRequest, Forbidden
from chatgate.providers.registry import ProviderRegistry

# Every dependency is `async def`: FastAPI runs a plain `def` in a thread pool, which cost about
# a tenth of a request's CPU on the gateway benchmark.


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _database(request: Request) -> Database:
    return request.app.state.database


async def _db_session(
    database: Annotated[Database, Depends(_database)],
) -> AsyncIterator[AsyncSession]:
    async with database.session() as session:
        yield session


_bearer = HTTPBearer(auto_error=False, description="a JWT or an API key (cg_…)")


async def request_user(app: State, headers: Headers, state: dict[str, Any]) -> User:
    """The caller, rate-limited; a service key names the end user it acts for in
    `X-Chatgate-User` (or in the body's `user_id`/`user` where a route has one). `state` is the
    request's: the edge put the client's address there, and the access log takes the user."""
    caller: User = await app.authenticator.authenticate(
        headers.get("authorization"), state.get("client_ip", "")
    )
    await app.limiter.check_request(caller=caller.limit_key)
    end_user = headers.get("x-chatgate-user")
    if end_user is not None and not 0 < len(end_user) <= 255:
        raise BadRequest("X-Chatgate-User must be 1 to 255 characters", code="invalid_end_user")
    user = acting_user(caller, end_user) if end_user else caller
    state["user_id"] = user.id
    return user


async def _current_user(request: Request, _: Annotated[object, Security(_bearer)] = None) -> User:
    """Headers are read straight from the request: FastAPI's per-parameter header handling was
    a third of the gateway's dependency cost. (`_bearer` only documents the scheme.)"""
    state = request.scope.setdefault("state", {})
    return await request_user(request.app.state, request.headers, state)


async def _admin_user(user: Annotated[User, Depends(_current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("this needs an admin", code="admin_required")
    return user


async def _catalog(request: Request) -> AssistantCatalog:
    return request.app.state.catalog


async def _providers(request: Request) -> ProviderRegistry:
    return request.app.state.providers


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]
DbSession = Annotated[AsyncSession, Depends(_db_session)]
CurrentUser = Annotated[User, Depends(_current_user)]
AdminUser = Annotated[User, Depends(_admin_user)]
Catalog = Annotated[AssistantCatalog, Depends(_catalog)]
Providers = Annotated[ProviderRegistry, Depends(_providers)]
