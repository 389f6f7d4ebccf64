"""The front door: one pure-ASGI layer that every request passes first. It gives the request its
trace id (returned as `X-Trace-Id`, with HSTS when it came over TLS: `hsts.py`), applies the
edge checks (address allow-list, per-address limit, loopback only without auth) and the body
checks (size and type, `bodies.py`) before any route or lane reads a byte, counts, times and
logs it, answers an unexpected exception with the 500 envelope, and serves the lanes: the
busiest endpoints, called from here, past FastAPI's routing.

One layer instead of four: each pure-ASGI middleware wraps `send` once more and adds a coroutine
to every request, and the gateway benchmark pays for each (docs/benchmarks.md, "Gateway")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.core.config import Settings
from chatgate.core.errors import AppError, error_response, unexpected_error
from chatgate.core.network import Network, networks
from chatgate.core.tracing import trace_id_of, using_trace_id
from chatgate.gateway.bodies import (
    BodyTooLarge,
    body_cap,
    body_headers,
    capped,
    size_refusal,
    too_large,
    type_refusal,
)
from chatgate.gateway.edge import Edge
from chatgate.gateway.hsts import HSTS_HEADER, over_tls
from chatgate.observability.requests import RequestObserver

log = logging.getLogger("chatgate.errors")
UNOBSERVED = frozenset({"/metrics"})  # scrapes would drown the traffic they measure


class Lane(Protocol):
    # Its route template: an exact path, or a prefix and one `{parameter}` segment at the end.
    path: str
    methods: frozenset[str]
    # Its path item in the OpenAPI document; empty when a FastAPI route of the same path, which
    # the lane shadows, documents it.
    openapi: dict[str, Any]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


@dataclass(frozen=True, slots=True)
class Door:
    """What the front door takes from the settings."""

    local_only: bool  # auth mode none: loopback clients asking for a loopback name only
    max_body_bytes: int
    max_upload_bytes: int | None = None  # documents uploaded to a knowledge base
    hsts_proxies: tuple[Network, ...] = ()  # whose X-Forwarded-Proto: https earns HSTS

    @classmethod
    def of(cls, settings: Settings) -> Door:
        access = settings.access
        return cls(
            local_only=settings.auth_mode == "none", max_body_bytes=settings.max_body_bytes,
            max_upload_bytes=settings.knowledge.max_upload_bytes,
            hsts_proxies=networks(access.trusted_proxies) if access.hsts_behind_proxy else (),
        )  # fmt: skip


@dataclass(slots=True)
class _Progress:
    status: int = 0  # until the response starts
    finished: bool = False


class Front:
    def __init__(
        self,
        app: ASGIApp,
        *,
        edge: Edge,
        door: Door,
        lanes: Iterable[Lane] = (),
        wrap_lanes: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        """`wrap_lanes` gives each lane what sits between this layer and the routes (with
        tracing on, the request span)."""
        self.app = app
        self.edge = edge
        self.door = door
        lanes = list(lanes)
        self.lanes = {lane.path: lane for lane in lanes if "{" not in lane.path}
        # (prefix, lane) for the lanes whose last segment is a parameter.
        self.prefixed = [(lane.path.split("{", 1)[0], lane) for lane in lanes if "{" in lane.path]
        self.lane_apps: dict[str, ASGIApp] = {
            lane.path: wrap_lanes(lane) if wrap_lanes else lane for lane in lanes
        }
        self.observer = RequestObserver()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = trace_id_of(scope)
        headers = [(b"x-trace-id", trace_id.encode())]
        if over_tls(scope, self.door.hsts_proxies):
            headers.append(HSTS_HEADER)
        response = _Progress()

        async def send_out(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.status = message["status"]
                message["headers"] = [*message.get("headers", ()), *headers]
            elif not message.get("more_body", False):
                response.finished = True
            await send(message)

        lane = self.lanes.get(scope["path"]) or self._prefixed(scope["path"])
        with using_trace_id(trace_id):
            if scope["path"] in UNOBSERVED:
                await self._serve(scope, receive, send_out, response, lane)
                return
            stats, token = self.observer.begin()
            try:
                await self._serve(scope, receive, send_out, response, lane)
            finally:
                # The route's template: a bounded label value, never the raw path.
                route = lane.path if lane else getattr(scope.get("route"), "path", None)
                self.observer.end(
                    stats, token, route=route or "unmatched", method=scope["method"],
                    status=response.status or 500, user=scope.get("state", {}).get("user_id"),
                )  # fmt: skip

    def _prefixed(self, path: str) -> Lane | None:
        for prefix, lane in self.prefixed:
            if (
                path.startswith(prefix)
                and len(path) > len(prefix)
                and "/" not in path[len(prefix) :]
            ):
                return lane
        return None

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, response: _Progress, lane: Lane | None
    ) -> None:
        try:
            door = self.door
            body = body_headers(scope)
            cap = body_cap(scope["path"], door.max_body_bytes, upload=door.max_upload_bytes)
            refusal = await self.edge.refusal(scope, local_only=door.local_only)
            if refusal is None and lane is not None and scope["method"] not in lane.methods:
                allow = ", ".join(sorted(lane.methods))
                refusal = AppError(
                    f"{lane.path} takes {allow}", code="method_not_allowed", status=405,
                    headers={"Allow": allow},
                )  # fmt: skip
            if refusal is None:
                refusal = type_refusal(scope, body, typeless=not door.local_only)
            # A lane reads its body after the credentials and answers in its own dialect: it
            # gets its cap as an AppError from `receive`. FastAPI parses a body before any
            # dependency runs: an oversized one is refused here, unread.
            if refusal is None and lane is None:
                refusal = size_refusal(body, cap)
            if refusal is not None:
                app: ASGIApp = error_response(refusal)
            else:
                app = self.lane_apps[lane.path] if lane is not None else self.app
            if body.has_body:
                error = too_large if lane is not None else BodyTooLarge
                receive = capped(receive, cap, declared=body.content_length, error=error)
            await app(scope, receive, send)
        except BodyTooLarge:
            if response.status:
                raise  # a route that answers before reading its whole body; nothing to add
            await error_response(too_large(cap))(scope, receive, send)
        except Exception as exc:
            if response.finished:
                return  # FastAPI's last-resort handler answered (and logged) it; it re-raises
            if response.status:
                raise  # cut short mid-answer: the server closes the connection
            await unexpected_error(exc)(scope, receive, send)


class FrontedFastAPI(FastAPI):
    """FastAPI with the front door outermost, outside FastAPI's own error, telemetry and
    body-size layers, so that a lane passes through none of them. `front_options` are Front's
    keyword arguments, set before the first request."""

    front_options: dict[str, Any]

    def build_middleware_stack(self) -> ASGIApp:
        return Front(super().build_middleware_stack(), **self.front_options)


def document_lanes(app: FastAPI, lanes: Iterable[Lane]) -> None:
    """Adds the lanes to the app's OpenAPI document, which lists only FastAPI's own routes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"].update({lane.path: lane.openapi for lane in lanes if lane.openapi})
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
