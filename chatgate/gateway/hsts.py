"""HTTP Strict Transport Security: a browser that saw it once over HTTPS refuses plain HTTP to
this host for a year, so a network in between cannot strip TLS from later visits (RFC 6797). It
is sent only on answers that travelled over TLS: chatgate's own (`chatgate serve
--ssl-certfile`), or a trusted proxy's that says so (`access.hsts_behind_proxy`); a browser
ignores it over plain HTTP anyway."""

from __future__ import annotations

from starlette.types import Scope

from chatgate.core.network import Network, in_networks

# Subdomains of the gateway's own name only; no `preload`, which cannot be taken back quickly.
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def over_tls(scope: Scope, proxies: tuple[Network, ...]) -> bool:
    """Whether this request reached chatgate over TLS, or reached one of `proxies` (trusted, and
    opted in) over TLS as its X-Forwarded-Proto says: the client-facing proxy's, the first."""
    if scope.get("scheme") == "https":
        return True
    if not proxies or not scope.get("client") or not in_networks(scope["client"][0], proxies):
        return False
    for name, value in scope["headers"]:
        if name == b"x-forwarded-proto":
            return value.split(b",", 1)[0].strip().lower() == b"https"
    return False
