"""Sortable ids: UUIDv7, time-ordered, so keyset pagination on `id` follows creation order."""

import uuid

import uuid6

from chatgate.core.errors import AppError


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid6.uuid7().bytes)


def parse_id(value: str, *, what: str) -> uuid.UUID:
    """An id from a path or query; 422 `invalid_<what>` when it is not a UUID. The answer does not
    repeat the value: a client may have put anything there, personal data included."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise AppError(f"{what} is not a UUID", code=f"invalid_{what}", status=422) from None
