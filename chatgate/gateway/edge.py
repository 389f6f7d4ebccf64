"""The edge: the client's address, the global allow-list and the per-address rate limit, before
anything else runs. Pure ASGI; refusals use the same error envelope as every other error."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from chatgate.core.errors import AppError, Forbidden, error_response
from chatgate.core.network import client_address, in_networks, networks
from chatgate.core.policies import AccessSettings
from chatgate.ratelimit.service import RateLimiter

PROBES = frozenset({"/health", "/ready"})


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, access: AccessSettings) -> None:
        self.app = app
        self.allowed = networks(access.allowed_cidrs)
        self.trusted = networks(access.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope["client"][0] if scope.get("client") else ""
        forwarded = None
        if self.trusted:
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded = value.decode("latin-1")
        address = client_address(peer, forwarded, self.trusted)
        scope.setdefault("state", {})["client_ip"] = address
        path = scope["path"]
        try:
            if self.allowed and path not in PROBES and not in_networks(address, self.allowed):
                raise Forbidden(f"requests from {address} are not allowed", code="ip_not_allowed")
            if path.startswith("/v1/"):
                limiter: RateLimiter = scope["app"].state.limiter
                await limiter.check_ip(address=address)
        except AppError as refusal:
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)
