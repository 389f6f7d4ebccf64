"""The cache's part of HTTP: the request's Cache-Control in, an X-Cache header out."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from chatgate.auth.deps import CurrentUser
from chatgate.cache.service import CacheDirective, CachePlan, directive_for, directive_from_header


async def _cache_directive(
    user: CurrentUser, cache_control: Annotated[str | None, Header()] = None
) -> CacheDirective:
    return directive_for(directive_from_header(cache_control), admin=user.is_admin)


# `Cache-Control: no-cache` asks for a fresh answer, which refreshes the shared entry when an
# admin asks (anyone else's is theirs alone: neither looked up nor stored); `no-store` keeps the
# answer out of the cache.
CacheControl = Annotated[CacheDirective, Depends(_cache_directive)]


def cache_headers(plan: CachePlan | None) -> dict[str, str]:
    """`X-Cache: hit | miss | bypass`; none when the cache does not apply to the question."""
    return {"X-Cache": plan.result} if plan is not None else {}
