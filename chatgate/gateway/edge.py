"""The edge: the client's address, the global allow-list and the per-address rate limit, checked
before anything else runs; and with no authentication, that the request is local (below)."""

from __future__ import annotations

import functools
import ipaddress

from starlette.types import Scope

from chatgate.core.errors import AppError, Forbidden
from chatgate.core.network import client_address, in_networks, networks
from chatgate.core.policies import AccessSettings
from chatgate.ratelimit.service import RateLimiter

PROBES = frozenset({"/health", "/ready"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


class Edge:
    def __init__(self, access: AccessSettings, limiter: RateLimiter) -> None:
        self.allowed = networks(access.allowed_cidrs)
        self.trusted = networks(access.trusted_proxies)
        self.limiter = limiter

    async def refusal(self, scope: Scope, *, local_only: bool = False) -> AppError | None:
        """Why this request is turned away, if it is; notes the client's address in its state.
        `local_only` (auth mode none) takes only loopback clients asking for a loopback name."""
        peer = scope["client"][0] if scope.get("client") else ""
        forwarded = host = origin = None
        for name, value in scope["headers"] if self.trusted or local_only else ():
            if name == b"x-forwarded-for" and self.trusted:
                forwarded = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        address = client_address(peer, forwarded, self.trusted)
        scope.setdefault("state", {})["client_ip"] = address
        path = scope["path"]
        try:
            if local_only:
                check_local(address, host, origin, unix_socket=not peer)
            if self.allowed and path not in PROBES and not in_networks(address, self.allowed):
                raise Forbidden(f"requests from {address} are not allowed", code="ip_not_allowed")
            if path.startswith("/v1/"):
                await self.limiter.check_ip(address=address)
        except AppError as refusal:
            return refusal
        return None


def check_local(
    address: str, host: str | None, origin: str | None, *, unix_socket: bool = False
) -> None:
    """With no authentication, anyone who can reach the port is the admin: only this machine may,
    and only by a loopback name, or a web page could reach it through DNS rebinding (its own name
    resolving to 127.0.0.1), which the browser treats as the page's own origin. A browser names
    the page behind a cross-site request in `Origin`: only a page served from here may write
    (the JSON-only bodies stop cross-site forms; this stops a bodiless cross-site POST too)."""
    if not (unix_socket or _is_loopback(address)):
        raise Forbidden(
            f"auth mode none serves this machine only, not {address}", code="not_loopback"
        )
    if host_name(host or "") not in LOOPBACK_HOSTS:
        raise Forbidden(
            "auth mode none answers only to localhost, 127.0.0.1 or [::1], not "
            f"{(host or 'no Host')[:100]!r}",
            code="host_not_allowed",
        )
    if origin is not None and not _is_local_origin(origin):
        raise Forbidden(
            f"auth mode none answers pages served from this machine only, not {origin[:100]!r}",
            code="origin_not_allowed",
        )


def _is_local_origin(origin: str) -> bool:
    scheme, separator, rest = origin.partition("://")
    return (
        bool(separator)
        and scheme.lower() in ("http", "https")
        and (host_name(rest) in LOOPBACK_HOSTS)
    )


def host_name(host: str) -> str:
    """The Host header's name without its port; "" when the header is malformed."""
    host = host.lower()
    if host.startswith("["):
        end = host.find("]") + 1
        if not end:
            return ""
        name = host[:end]
    else:
        name = host.partition(":")[0]
    port = host[len(name) :]
    if port and not (port.startswith(":") and port[1:].isdigit()):
        return ""
    return name


@functools.lru_cache(maxsize=1024)  # parsing the address was a twentieth of a history read
def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
