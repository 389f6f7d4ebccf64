"""One error vocabulary: domain exceptions, mapped by one handler to the envelope of API.md."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatgate.core.responses import JSONBytes
from chatgate.core.tracing import current_trace_id

log = logging.getLogger("chatgate.errors")


class AppError(Exception):
    """A failure with an HTTP status and a stable snake_case code."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.headers = headers or {}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class TooLarge(AppError):
    status, code = 413, "too_large"


class ServiceUnavailable(AppError):
    status, code = 503, "service_unavailable"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "trace_id": current_trace_id(), **extra}}


def error_response(error: AppError) -> JSONBytes:
    return JSONBytes(
        error_body(error.code, error.message), status_code=error.status, headers=error.headers
    )


_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def problem(err: dict[str, Any]) -> str:
    """What is wrong with a field, never repeating what the client sent there (pydantic's
    message for an unknown tag of a tagged union, e.g. a message's `role`, quotes the tag)."""
    if err.get("type") == "union_tag_invalid":
        expected = (err.get("ctx") or {}).get("expected_tags", "")
        return f"not one of the expected values ({expected})"
    return str(err.get("msg", "invalid"))


def _describe(err: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in err.get("loc", ()) if part != "body") or "body"
    return f"{where}: {problem(err)}"


def validation_failure(errors: Sequence[Any]) -> JSONBytes:
    """The answer to a request that fails validation: pydantic's errors, `loc` from the request
    part (`query`, `body`…) on, as 422 `validation_error` (400 `invalid_json` for bad JSON)."""
    if any(err.get("type") == "json_invalid" for err in errors):
        return JSONBytes(
            error_body("invalid_json", "the request body is not valid JSON"), status_code=400
        )
    details = [
        {"field": ".".join(str(p) for p in err.get("loc", ())), "problem": problem(err)}
        for err in errors
    ]
    message = "; ".join(_describe(err) for err in errors[:5])
    return JSONBytes(error_body("validation_error", message, details=details), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONBytes:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONBytes:
        return validation_failure(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONBytes:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return JSONBytes(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONBytes:
        return unexpected_error(exc)


# What a database that is down, restarting or overloaded raises through SQLAlchemy and its
# drivers: a refused or cut connection, a pool or statement timeout.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def unexpected_error(exc: BaseException) -> JSONBytes:
    """The answer to an exception no handler knew, logged: 503 `database_unavailable` when the
    database did not answer (retrying later may work), else 500 `internal_error`."""
    lost = isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    if lost or isinstance(exc, DATABASE_DOWN):
        log.error("the database did not answer: %s", type(exc).__name__)
        body = error_body("database_unavailable", "the database is not answering; try again")
        return JSONBytes(body, status_code=503, headers={"Retry-After": "2"})
    log.error("unhandled error", exc_info=exc)
    return internal_error()


def internal_error() -> JSONBytes:
    return JSONBytes(error_body("internal_error", "an unexpected error occurred"), status_code=500)
