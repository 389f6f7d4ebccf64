"""Column values as the archive holds them: what the database stores (a sealed value as its
ciphertext, never opened), in a form both databases read back the same: bytes as base64,
datetimes in UTC with their offset, dates as YYYY-MM-DD, UUIDs as text, JSON as its stored
text (so that SQL NULL and JSON `null`, both None in Python, stay apart)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Date,
    DateTime,
    LargeBinary,
    Text,
    Uuid,
    cast,
    null,
    type_coerce,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

Codec = Callable[[Any], Any]


def stored_type(column: Column[Any]) -> TypeEngine[Any]:
    """The type the database stores: a decorator's own type, so that what a decorator does in
    Python (sealing, opening) is left out and a sealed value is copied as it is."""
    kind = column.type
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


def stored_value(column: Column[Any]) -> ColumnElement[Any]:
    """A column as the archive reads it: JSON as its text (a cast in SQL: asyncpg decodes a
    json column whatever the type asked for), the rest as stored."""
    kind = stored_type(column)
    if isinstance(kind, JSON):
        return cast(column, Text).label(column.name)
    return type_coerce(column, kind).label(column.name)


def _same(value: Any) -> Any:
    return value


def _to_text(value: Any) -> Any:
    return None if value is None else str(value)


def _to_uuid(value: Any) -> Any:
    return None if value is None else uuid.UUID(value)


def _to_base64(value: Any) -> Any:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _from_base64(value: Any) -> Any:
    return None if value is None else base64.b64decode(value)


def _to_iso(value: Any) -> Any:
    if value is None:
        return None
    # SQLite hands back the UTC wall time without its offset (core/db.py's UTCDateTime).
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def _from_json_text(value: Any) -> Any:
    if value is None:
        return null()  # SQL NULL (the JSON type would write None as JSON null)
    parsed = orjson.loads(value)
    return JSON.NULL if parsed is None else parsed


def _from_iso(value: Any) -> Any:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _date_to_iso(value: Any) -> Any:
    return None if value is None else value.isoformat()


def _date_from_iso(value: Any) -> Any:
    return None if value is None else date.fromisoformat(value)


def encoder(kind: TypeEngine[Any]) -> Codec:
    if isinstance(kind, LargeBinary):
        return _to_base64
    if isinstance(kind, DateTime):
        return _to_iso
    if isinstance(kind, Date):
        return _date_to_iso
    if isinstance(kind, Uuid):
        return _to_text
    return _same


def decoder(kind: TypeEngine[Any]) -> Codec:
    if isinstance(kind, JSON):
        return _from_json_text
    if isinstance(kind, LargeBinary):
        return _from_base64
    if isinstance(kind, DateTime):
        return _from_iso
    if isinstance(kind, Date):
        return _date_from_iso
    if isinstance(kind, Uuid):
        return _to_uuid
    return _same
