"""The caller of a request: authenticated, rate-limited, and the end user a service key acts for."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer
from starlette.datastructures import Headers

from chatgate.auth.keys import ApiKeys
from chatgate.auth.service import Authenticator, User, acting_user
from chatgate.core.errors import BadRequest, Forbidden
from chatgate.core.parts import Parts, part, parts_of
from chatgate.ratelimit.service import RateLimiter
from chatgate.vault.service import Vault

_bearer = HTTPBearer(auto_error=False, description="a JWT or an API key (cg_…)")


async def request_user(parts: Parts, headers: Headers, state: dict[str, Any]) -> User:
    """The caller, rate-limited; a service key names the end user it acts for in
    `X-Chatgate-User` (or in the body's `user_id`/`user` where a route has one). `state` is the
    request's: the edge put the client's address there, and the access log takes the user."""
    caller: User = await parts.get(Authenticator).authenticate(
        headers.get("authorization"), state.get("client_ip", "")
    )
    await parts.get(RateLimiter).check_request(caller=caller.limit_key)
    end_user = _header_text(headers.get("x-chatgate-user"))
    if end_user is not None and not 0 < len(end_user) <= 255:
        raise BadRequest("X-Chatgate-User must be 1 to 255 characters", code="invalid_end_user")
    user = acting_user(caller, end_user) if end_user else caller
    state["user_id"] = user.id
    return user


def _header_text(value: str | None) -> str | None:
    """A header as the UTF-8 its sender wrote (Starlette reads header bytes as Latin-1), so an
    end user named in Chinese is the same user in a header as in a body."""
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("X-Chatgate-User must be UTF-8", code="invalid_end_user") from None


async def _current_user(request: Request, _: Annotated[object, Security(_bearer)] = None) -> User:
    """Headers are read straight from the request: FastAPI's per-parameter header handling was
    a third of the gateway's dependency cost. (`_bearer` only documents the scheme.)"""
    state = request.scope.setdefault("state", {})
    parts = parts_of(request.app)
    user = await request_user(parts, request.headers, state)
    await parts.get(Vault).enter(user.id)  # what this request stores or reads is sealed as theirs
    return user


async def _admin_user(user: Annotated[User, Depends(_current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("this needs an admin", code="admin_required")
    return user


CurrentUser = Annotated[User, Depends(_current_user)]
AdminUser = Annotated[User, Depends(_admin_user)]
Keys = Annotated[ApiKeys, Depends(part(ApiKeys))]
