"""Every version of an assistant, kept as it was saved: what the console lists, diffs and rolls
back to. A version's config is every `AssistantConfig` field but `id`, and `enabled`, read from
the fields themselves, so a field added to the configuration is versioned without a change here.
The catalog writes a version in the same transaction as the change that makes it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.assistants.models import AssistantRow, AssistantVersionRow
from chatgate.core.config import AssistantConfig
from chatgate.core.errors import NotFound
from chatgate.core.time import utcnow


def versioned_fields() -> tuple[str, ...]:
    return (*(f for f in AssistantConfig.model_fields if f != "id"), "enabled")


def config_of(row: AssistantRow) -> dict[str, Any]:
    """The row's configuration as a version keeps it."""
    return {field: getattr(row, field) for field in versioned_fields()}


def seeded_config(spec: AssistantConfig) -> dict[str, Any]:
    """A configured assistant's first version, as the seed writes it (enabled)."""
    return {**spec.model_dump(exclude={"id"}), "enabled": True}


def add_version(db: AsyncSession, row: AssistantRow, *, user_id: str | None) -> None:
    """The row as it is now, as its version `row.version`, in the caller's transaction."""
    db.add(
        AssistantVersionRow(
            assistant_id=row.id,
            version=row.version,
            config=config_of(row),
            user_id=user_id,
            created_at=utcnow(),
        )
    )


async def list_versions(db: AsyncSession, assistant_id: str) -> list[AssistantVersionRow]:
    """The assistant's versions, newest first."""
    query = (
        select(AssistantVersionRow)
        .where(AssistantVersionRow.assistant_id == assistant_id)
        .order_by(AssistantVersionRow.version.desc())
    )
    return list((await db.scalars(query)).all())


async def version_or_404(db: AsyncSession, assistant_id: str, version: int) -> AssistantVersionRow:
    found = await db.get(AssistantVersionRow, (assistant_id, version))
    if found is None:
        raise NotFound(f"the assistant has no version {version}", code="version_not_found")
    return found


def restorable(config: dict[str, Any]) -> dict[str, Any]:
    """A version's configuration as it can be saved today: the fields that still exist (a field
    the version predates takes its default when validated: it did not exist, so it was off)."""
    return {k: v for k, v in config.items() if k in versioned_fields()}
