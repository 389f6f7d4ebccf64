"""Trace ids: from `traceparent` or `X-Request-ID`, made otherwise; the front door
(`chatgate.gateway.front`) returns them as `X-Trace-Id`."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace as otel_trace
from starlette.types import Scope

_random = random.Random()  # seeded from os.urandom once
_trace_id: ContextVar[str] = ContextVar("trace_id", default="")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def current_trace_id() -> str:
    return _trace_id.get()


@contextmanager
def using_trace_id(trace_id: str | None) -> Iterator[None]:
    """Work done outside a request (a queued answer) under the trace id of the request that
    asked for it, so its log lines are found by the same id."""
    token = _trace_id.set(trace_id or new_trace_id())
    try:
        yield
    finally:
        _trace_id.reset(token)


def random_hex(digits: int) -> str:
    """Ids that must be unique, not secret: Python's generator, not a system call per id (three
    `os.urandom` calls were 45 µs of each gateway request)."""
    return f"{_random.getrandbits(digits * 4):0{digits}x}"


def new_trace_id() -> str:
    return random_hex(32)


def trace_id_from_headers(traceparent: str | None, request_id: str | None) -> str:
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1)
    if request_id and _REQUEST_ID.match(request_id):
        return request_id
    return new_trace_id()


def traceparent_for(trace_id: str) -> str | None:
    """The W3C header to pass on to engines, when the trace id is one W3C can carry. With
    OpenTelemetry spans on, its parent is the current span (the engine call's)."""
    if not _W3C_TRACE_ID.fullmatch(trace_id):
        return None
    span = otel_trace.get_current_span().get_span_context()
    if span.is_valid and span.trace_id == int(trace_id, 16):
        return f"00-{trace_id}-{span.span_id:016x}-{span.trace_flags & 1:02x}"  # sampled only
    return f"00-{trace_id}-{random_hex(16)}-01"


def trace_id_of(scope: Scope) -> str:
    """The request's trace id: its `traceparent`'s, else its `X-Request-ID`, else a new one."""
    traceparent = request_id = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
        elif name == b"x-request-id":
            request_id = value.decode("latin-1")
    return trace_id_from_headers(traceparent, request_id)
