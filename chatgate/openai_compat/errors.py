"""Errors in OpenAI's own shape, so its SDKs raise the matching exception classes."""

from __future__ import annotations

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
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONBytes:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": code,
            "trace_id": current_trace_id(),
        }
    }
    return JSONBytes(body, status_code=status, headers=headers)


def openai_failure(exc: AppError | ValidationError | RequestValidationError) -> JSONBytes:
    """chatgate's error, or a request that does not parse or validate, in OpenAI's envelope."""
    if isinstance(exc, AppError):
        param = getattr(exc, "param", None)  # the parameter an engine cannot honour
        return openai_error(exc.status, exc.code, exc.message, exc.headers, param=param)
    return _invalid(exc.errors())


def _invalid(errors: Sequence[Any]) -> JSONBytes:
    """OpenAI's 400 naming the first bad field."""
    if any(err.get("type") == "json_invalid" for err in errors):
        return openai_error(400, "invalid_json", "the request body is not valid JSON")
    first = errors[0] if errors else {}
    param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    return openai_error(400, "invalid_request", f"{param}: {problem(first)}", param=param)


class OpenAIErrorRoute(APIRoute):
    """Turns chatgate's errors into OpenAI's envelope for the routes of this dialect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (AppError, RequestValidationError) as exc:
                return openai_failure(exc)

        return handle
