"""The caller of Anthropic's routes: Anthropic's SDKs send the key in `x-api-key`, not in
`Authorization`; on these routes alone that header is taken as the bearer credential (a JWT or a
chatgate API key), then authenticated exactly as everywhere else."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.datastructures import Headers

from chatgate.auth.deps import request_user
from chatgate.auth.service import User
from chatgate.core.parts import Parts, parts_of

# Both only document the schemes (`_caller` reads the headers itself).
_api_key = APIKeyHeader(
    name="x-api-key", auto_error=False, description="a JWT or an API key (cg_…), as Anthropic's"
)
_bearer = HTTPBearer(auto_error=False, description="a JWT or an API key (cg_…)")


def with_api_key_as_bearer(headers: Headers) -> Headers:
    """The headers with `x-api-key` as `Authorization: Bearer`, when no Authorization is sent
    (one that is wins, as the SDK sends only one of them)."""
    key = headers.get("x-api-key")
    if key is None or "authorization" in headers:
        return headers
    raw = [(name, value) for name, value in headers.raw if name != b"x-api-key"]
    return Headers(raw=[*raw, (b"authorization", b"Bearer " + key.encode("latin-1"))])


async def _caller(
    request: Request,
    _key: Annotated[str | None, Security(_api_key)] = None,
    _token: Annotated[object, Security(_bearer)] = None,
) -> User:
    headers = with_api_key_as_bearer(request.headers)
    state = request.scope.setdefault("state", {})
    return await request_user(parts_of(request.app), headers, state)


async def _parts(request: Request) -> Parts:
    return parts_of(request.app)


Caller = Annotated[User, Depends(_caller)]
RuntimeParts = Annotated[Parts, Depends(_parts)]
