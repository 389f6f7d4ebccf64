"""Which tables an archive holds, in which order: every table of every domain's `models.py`,
found by walking the package (a table added later is backed up with no change here), parents
before children. Derived data is not among them: SQLite's FTS5 table and PostgreSQL's
`search_vector` are no model's columns, and the database rebuilds them as rows arrive
(migrations 0010 and 0012: a trigger, a generated column)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from sqlalchemy import Table, column, table
from sqlalchemy.sql.expression import TableClause

import chatgate
from chatgate.backup.values import stored_type
from chatgate.core.db import Base
from chatgate.vault.models import DataKeyRow

# Kept apart from the data: destroying a user's data key must leave an older archive unreadable
# for that user too, so the keys go in a file of their own with its own, shorter, retention.
KEY_TABLES = frozenset({DataKeyRow.__tablename__})


def _import_every_model() -> None:
    for domain in pkgutil.iter_modules(chatgate.__path__):
        if domain.ispkg and importlib.util.find_spec(f"chatgate.{domain.name}.models"):
            importlib.import_module(f"chatgate.{domain.name}.models")


def ordered_tables() -> list[Table]:
    """Every table, each after the tables its foreign keys point to."""
    _import_every_model()
    return list(Base.metadata.sorted_tables)


def as_stored(source: Table) -> TableClause:
    """The table with each column's stored type, for inserting values exactly as archived."""
    columns: list[Any] = [column(c.name, stored_type(c)) for c in source.columns]
    return table(source.name, *columns)
