"""The edge: the client's address, the global allow-list and the per-address rate limit, checked
before anything else runs."""

from __future__ import annotations

from starlette.types import Scope

from chatgate.core.errors import AppError, Forbidden
from chatgate.core.network import client_address, in_networks, networks
from chatgate.core.policies import AccessSettings
from chatgate.ratelimit.service import RateLimiter

PROBES = frozenset({"/health", "/ready"})


class Edge:
    def __init__(self, access: AccessSettings, limiter: RateLimiter) -> None:
        self.allowed = networks(access.allowed_cidrs)
        self.trusted = networks(access.trusted_proxies)
        self.limiter = limiter

    async def refusal(self, scope: Scope) -> AppError | None:
        """Why this request is turned away, if it is; notes the client's address in its state."""
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
                await self.limiter.check_ip(address=address)
        except AppError as refusal:
            return refusal
        return None
