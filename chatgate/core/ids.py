"""Sortable ids: UUIDv7, time-ordered, so keyset pagination on `id` follows creation order."""

import uuid

import uuid6


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid6.uuid7().bytes)
