"""Errors in Anthropic's own shape (`{"type": "error", "error": {"type", "message"}}`), so its
SDKs raise the matching exception classes; chatgate's `code` and trace id ride along in the
error, and the trace id is the `request-id` the SDK reports."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError

from chatgate.core.errors import AppError, problem
from chatgate.core.responses import JSONBytes
from chatgate.core.tracing import current_trace_id

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": error_type(status),
        "message": message,
        "code": code,
        "trace_id": current_trace_id(),
    }
    if param is not None:
        error["param"] = param
    return {"type": "error", "error": error, "request_id": current_trace_id()}


def app_error_body(exc: AppError) -> dict[str, Any]:
    """chatgate's error as Anthropic's body; the parameter named when one cannot be honoured."""
    return error_body(exc.status, exc.code, exc.message, getattr(exc, "param", None))


def request_id() -> dict[str, str]:
    """Anthropic's `request-id` header: the trace id, which the SDK reports as the request's."""
    return {"request-id": current_trace_id()}


def anthropic_failure(exc: AppError | ValidationError | RequestValidationError) -> JSONBytes:
    """chatgate's error, or a request that does not parse or validate, in Anthropic's shape."""
    if isinstance(exc, AppError):
        body, status, headers = app_error_body(exc), exc.status, exc.headers
    else:
        body, status, headers = _invalid(exc.errors()), 400, {}
    return JSONBytes(body, status_code=status, headers={**headers, **request_id()})


def _invalid(errors: Sequence[Any]) -> dict[str, Any]:
    """Anthropic's 400 naming the bad field as its API words it (`messages.0.content.0.text`):
    of a value that matched none of a union's shapes, the error that got furthest into one."""
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_body(400, "invalid_json", "the request body is not valid JSON")
    worst: dict[str, Any] = max(errors, key=lambda err: len(err.get("loc", ())), default={})
    where = ".".join(_place(worst.get("loc", ()))) or "body"
    return error_body(400, "invalid_request", f"{where}: {problem(worst)}", param=where)


def _place(loc: Sequence[Any]) -> list[str]:
    """A location without the names pydantic gives a union's shapes (`str`, `list[...]`)."""
    return [str(p) for p in loc if p != "body" and not _SHAPE.fullmatch(str(p))]


_SHAPE = re.compile(r"str|int|float|bool|dict\[.*\]|list\[.*\]|[\w-]+\[.*\]")


class AnthropicErrorRoute(APIRoute):
    """Turns chatgate's errors into Anthropic's shape for the routes of this dialect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (AppError, RequestValidationError, ValidationError) as exc:
                return anthropic_failure(exc)

        return handle
