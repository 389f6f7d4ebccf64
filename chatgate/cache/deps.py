"""The cache's part of HTTP: the request's Cache-Control in, an X-Cache header out."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from chatgate.cache.service import CacheDirective, CachePlan, directive_from_header


async def _cache_directive(cache_control: Annotated[str | None, Header()] = None) -> CacheDirective:
    return directive_from_header(cache_control)


# `Cache-Control: no-cache` asks for a fresh answer (which then refreshes the cache);
# `no-store` also keeps the answer out of it.
CacheControl = Annotated[CacheDirective, Depends(_cache_directive)]


def cache_headers(plan: CachePlan | None) -> dict[str, str]:
    """`X-Cache: hit | miss | bypass`; none when the cache does not apply to the question."""
    return {"X-Cache": plan.result} if plan is not None else {}
