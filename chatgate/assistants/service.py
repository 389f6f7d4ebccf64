"""The assistant catalog: rows in the database, cached per process, fresh on every request.

Each change bumps a revision (in Redis when configured, so every process sees it; in process
otherwise). A request compares the revision with the one its cache was loaded at and reloads
when they differ, so an edit is effective on the next request everywhere, with no restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.assistants.models import AssistantRow, AssistantVersionRow
from chatgate.assistants.schemas import Assistant, AssistantCreate, AssistantUpdate
from chatgate.assistants.versions import (
    add_version,
    list_versions,
    restorable,
    seeded_config,
    version_or_404,
)
from chatgate.audit.service import record_audit_event
from chatgate.auth.service import User
from chatgate.core.config import AssistantConfig
from chatgate.core.db import Database
from chatgate.core.errors import AppError, Conflict, NotFound
from chatgate.core.policies import seeded_guards
from chatgate.core.revision import Revision
from chatgate.core.time import utcnow

REVISION_KEY = "chatgate:assistants:revision"
FIELDS = tuple(AssistantConfig.model_fields)


def _from_row(row: AssistantRow) -> Assistant:
    return Assistant.model_validate({f: getattr(row, f) for f in (*FIELDS, "enabled", "version")})


def assistant_not_found() -> NotFound:
    # Without the id asked for: a client may have put anything there, personal data included.
    return NotFound("no assistant has this id", code="assistant_not_found")


class AssistantCatalog:
    def __init__(
        self,
        *,
        database: Database,
        redis: Redis | None,
        provider_ids: set[str],
        local_providers: Collection[str] = (),
    ) -> None:
        self._database = database
        self._revision = Revision(redis, REVISION_KEY)
        self._provider_ids = provider_ids
        # Which engines are the bundled model: an assistant created on one, naming no guards,
        # gets them off; on any other (unknown here included) they are on.
        self._local_providers = frozenset(local_providers)
        self._by_id: dict[str, Assistant] = {}
        self._loaded_revision: int | None = None
        self._lock = asyncio.Lock()

    async def seed(self, configs: list[AssistantConfig]) -> None:
        """Adds the configured assistants that the database does not have yet.

        Several workers start at once and seed together: ON CONFLICT DO NOTHING lets every one
        of them succeed (a plain insert failed the second worker's start-up)."""
        if not configs:
            return
        now = utcnow()
        rows = [
            {**c.model_dump(), "enabled": True, "version": 1, "created_at": now, "updated_at": now}
            for c in configs
        ]
        dialect = self._database.engine.dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        async with self._database.session() as db:
            added = await db.scalars(
                insert(AssistantRow)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(AssistantRow.id)
            )
            # Version 1 of the assistants this worker added (not of those another one did).
            new = set(added.all())
            versions = [
                {"assistant_id": c.id, "version": 1, "config": seeded_config(c), "created_at": now}
                for c in configs
                if c.id in new
            ]
            if versions:
                await db.execute(
                    insert(AssistantVersionRow).values(versions).on_conflict_do_nothing()
                )
            await db.commit()
        await self._changed()

    async def _changed(self) -> None:
        """After a change is saved: this process reloads on its next use, whatever Redis says
        (a restarted Redis may count revisions from zero again), and the others are told."""
        self._loaded_revision = None
        await self._revision.bump()

    async def _current(self) -> dict[str, Assistant]:
        revision = await self._revision.current()
        if revision != self._loaded_revision:
            async with self._lock:
                if revision != self._loaded_revision:
                    async with self._database.session() as db:
                        rows = (await db.scalars(select(AssistantRow))).all()
                    self._by_id = {row.id: _from_row(row) for row in rows}
                    self._loaded_revision = revision
        return self._by_id

    async def get(self, assistant_id: str) -> Assistant:
        """An enabled assistant, or a clear 404/409."""
        assistant = (await self._current()).get(assistant_id)
        if assistant is None:
            raise assistant_not_found()
        if not assistant.enabled:
            raise Conflict(f"assistant {assistant_id!r} is disabled", code="assistant_disabled")
        return assistant

    async def enabled(self) -> list[Assistant]:
        return [a for a in (await self._current()).values() if a.enabled]

    async def everything(self) -> list[AssistantRow]:
        async with self._database.session() as db:
            return list((await db.scalars(select(AssistantRow).order_by(AssistantRow.id))).all())

    async def row(self, assistant_id: str) -> AssistantRow:
        async with self._database.session() as db:
            row = await db.get(AssistantRow, assistant_id)
        if row is None:
            raise assistant_not_found()
        return row

    def _check_providers(self, spec: AssistantConfig) -> None:
        named = [spec.provider, *spec.fallback_providers]
        if spec.guards.private_provider:
            named.append(spec.guards.private_provider)
        for provider in named:
            if provider not in self._provider_ids:
                raise AppError(
                    f"provider {provider!r} is not configured; known: {sorted(self._provider_ids)}",
                    code="unknown_provider",
                    status=422,
                )

    async def create(self, *, user: User, spec: AssistantCreate) -> AssistantRow:
        self._check_providers(spec)
        if "guards" not in spec.model_fields_set:
            local = spec.provider in self._local_providers
            spec = spec.model_copy(update={"guards": seeded_guards("local" if local else "remote")})
        async with self._database.session() as db:
            if await db.get(AssistantRow, spec.id) is not None:
                raise Conflict(f"assistant {spec.id!r} already exists", code="assistant_exists")
            now = utcnow()
            row = AssistantRow(
                **spec.model_dump(), enabled=True, version=1, created_at=now, updated_at=now
            )
            db.add(row)
            add_version(db, row, user_id=user.id)
            record_audit_event(
                db,
                action="assistant.created",
                user_id=user.id,
                target_type="assistant",
                target_id=spec.id,
                details={"version": 1, **spec.model_dump()},
            )
            await db.commit()
        await self._changed()
        return row

    async def update(
        self, *, user: User, assistant_id: str, changes: AssistantUpdate
    ) -> AssistantRow:
        values = changes.model_dump(exclude_unset=True)
        async with self._database.session() as db:
            row = await _locked_row(db, assistant_id)
            before = {k: getattr(row, k) for k in values}
            self._validated({**{f: getattr(row, f) for f in FIELDS}, **values})
            changed = {k: v for k, v in values.items() if before[k] != v}
            if changed:
                for key, value in changed.items():
                    setattr(row, key, value)
                row.version += 1
                row.updated_at = utcnow()
                add_version(db, row, user_id=user.id)
                action = (
                    "assistant.disabled" if changed.get("enabled") is False else "assistant.updated"
                )
                details: dict[str, Any] = {
                    "version": row.version,
                    "changes": {k: {"from": before[k], "to": v} for k, v in changed.items()},
                }
                record_audit_event(
                    db,
                    action=action,
                    user_id=user.id,
                    target_type="assistant",
                    target_id=assistant_id,
                    details=details,
                )
            await db.commit()
        if changed:
            await self._changed()
        return row

    async def disable(self, *, user: User, assistant_id: str) -> AssistantRow:
        return await self.update(
            user=user, assistant_id=assistant_id, changes=AssistantUpdate(enabled=False)
        )

    async def versions(self, assistant_id: str) -> list[AssistantVersionRow]:
        """The assistant's versions, newest first."""
        async with self._database.session() as db:
            if await db.get(AssistantRow, assistant_id) is None:
                raise assistant_not_found()
            return await list_versions(db, assistant_id)

    async def rollback(self, *, user: User, assistant_id: str, version: int) -> AssistantRow:
        """A new version whose configuration is that of `version` (enabled or not as it was),
        however like the current one it is: a rollback is a deliberate act, listed and audited."""
        async with self._database.session() as db:
            row = await _locked_row(db, assistant_id)
            old = await version_or_404(db, assistant_id, version)
            spec = self._validated({**restorable(old.config), "id": assistant_id})
            previous = row.version
            for key, value in spec.model_dump(exclude={"id", "version"}).items():
                setattr(row, key, value)
            row.version += 1
            row.updated_at = utcnow()
            add_version(db, row, user_id=user.id)
            record_audit_event(
                db,
                action="assistant.rolled_back",
                user_id=user.id,
                target_type="assistant",
                target_id=assistant_id,
                details={"from": previous, "to": version, "version": row.version},
            )
            await db.commit()
        await self._changed()
        return row

    async def draft(
        self, assistant_id: str, changes: AssistantUpdate
    ) -> tuple[Assistant, Assistant]:
        """The assistant as it is saved (on or off), and as it would be with `changes`,
        validated as an update is; nothing is saved."""
        live = _from_row(await self.row(assistant_id))
        values = changes.model_dump(exclude_unset=True, exclude={"enabled"})
        return live, self._validated({**live.model_dump(), **values})

    def _validated(self, values: dict[str, Any]) -> Assistant:
        """An assistant's fields as a whole, or 422 `invalid_assistant` / `unknown_provider`."""
        try:
            spec = Assistant.model_validate(values)
        except ValidationError as exc:
            message = "; ".join(str(e["msg"]) for e in exc.errors())
            raise AppError(message, code="invalid_assistant", status=422) from None
        self._check_providers(spec)
        return spec


async def _locked_row(db: AsyncSession, assistant_id: str) -> AssistantRow:
    """The row, locked until the transaction ends, so that changes at once number their
    versions one after the other. A write that changes nothing comes first: it locks the row on
    PostgreSQL and takes the database's write lock on SQLite (where a read first would let two
    changes read the same version, and the second fail on its version's key)."""
    await db.execute(
        update(AssistantRow)
        .where(AssistantRow.id == assistant_id)
        .values(version=AssistantRow.version)
    )
    row = await db.get(AssistantRow, assistant_id, populate_existing=True)
    if row is None:
        raise assistant_not_found()
    return row
