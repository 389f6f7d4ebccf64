"""Request bodies at the front door: how large and of what type, decided from the headers before
any route, lane or authentication reads a byte, and held to while the body streams in.

The two tables below are the one place a route says it takes more than `max_body_bytes`, or a
body that is not JSON; every other body is JSON and at most `max_body_bytes`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope

from chatgate.core.errors import AppError, TooLarge
from chatgate.openai_compat.lane import MAX_BODY_BYTES as CONVERSATION_BYTES

# Routes that take larger bodies than `max_body_bytes`, and how large.
LARGER_BODIES: dict[str, int] = {
    # A whole conversation, sent each time, images included.
    "/v1/chat/completions": CONVERSATION_BYTES,
    "/v1/responses": CONVERSATION_BYTES,
    "/v1/messages": CONVERSATION_BYTES,
}
# Routes whose bodies are not JSON, and the media types each takes.
OTHER_BODY_TYPES: dict[str, frozenset[str]] = {}
# Upload routes (their paths hold an id): multipart bodies up to the upload cap
# (`CHATGATE_KNOWLEDGE__MAX_UPLOAD_BYTES`) plus room for the multipart envelope around the file.
UPLOAD_ROUTES = re.compile(r"/v1/admin/knowledge-bases/[^/]+/documents")
UPLOAD_TYPES = frozenset({"multipart/form-data"})
MULTIPART_ENVELOPE = 64 * 1024
# A body of any other type could come from a cross-site HTML form or a no-preflight fetch.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body outgrows its cap. An HTTPException, because FastAPI
    passes those through its body parsing (anything else becomes a 400) to the envelope's
    handler; the front door answers it for the lanes."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, f"the request body is over {cap} bytes")


@dataclass(frozen=True, slots=True)
class BodyHeaders:
    content_type: str | None = None
    content_length: int | None = None
    chunked: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def body_headers(scope: Scope) -> BodyHeaders:
    content_type = length = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None  # the server refuses a bad one
        elif name == b"transfer-encoding":
            chunked = True
    return BodyHeaders(content_type, length, chunked)


def body_cap(path: str, default: int, *, upload: int | None = None) -> int:
    if upload is not None and UPLOAD_ROUTES.fullmatch(path):
        return upload + MULTIPART_ENVELOPE
    return LARGER_BODIES.get(path, default)


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    """`application/json` or `application/<anything>+json`, with any parameters."""
    kind, _, subtype = _media_type(content_type).partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def type_refusal(scope: Scope, body: BodyHeaders, *, typeless: bool) -> AppError | None:
    """Why this request's body type is refused, if it is. `typeless` lets a body with no
    Content-Type through to its route or lane, as before: with credentials in a header a page
    elsewhere cannot post as anyone anyway, but with no authentication a typeless body (a
    Blob) is what a page could still send without a preflight."""
    if scope["method"] not in BODY_METHODS:
        return None
    content_type = body.content_type
    if content_type is None and (typeless or not body.has_body):
        return None
    content_type = content_type or ""
    path = scope["path"]
    allowed = UPLOAD_TYPES if UPLOAD_ROUTES.fullmatch(path) else OTHER_BODY_TYPES.get(path, ())
    if is_json(content_type) or _media_type(content_type) in allowed:
        return None
    return AppError(
        f"this endpoint takes application/json, not {content_type[:100] or 'no type'}",
        code="unsupported_media_type", status=415,
    )  # fmt: skip


def size_refusal(body: BodyHeaders, cap: int) -> AppError | None:
    """A body whose Content-Length is over its cap, refused before a byte of it is read."""
    if body.content_length is not None and body.content_length > cap:
        return too_large(cap)
    return None


def too_large(cap: int) -> TooLarge:
    return TooLarge(f"the request body is over {cap} bytes", code="too_large")


def capped(
    receive: Receive, cap: int, *, declared: int | None, error: Callable[[int], Exception]
) -> Receive:
    """`receive` that raises `error(cap)` once the body passes `cap`: at the first call when its
    Content-Length says so, else as soon as the bytes read so far do, so a body with no (or a
    false) Content-Length is cut off while it streams in, never read whole."""
    size = 0

    async def receive_capped() -> Message:
        nonlocal size
        if declared is not None and declared > cap:
            raise error(cap)
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > cap:
                raise error(cap)
        return message

    return receive_capped
