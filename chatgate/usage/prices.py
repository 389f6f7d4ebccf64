"""Prices per model, in the deployment's currency per million tokens: rows in the database,
seeded from the YAML's `prices:`, changed by admins (`/v1/admin/prices`), cached per process.

As the assistant catalog does, each change bumps a revision (in Redis when configured, so every
process sees it). The ledger's writer checks the revision about once a second (`refresh`), so a
call is costed without any wait on its path (`cost` is a dictionary lookup) at the price of at
most a second ago.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from chatgate.audit.service import record_audit_event
from chatgate.core.config import PriceConfig
from chatgate.core.db import Database
from chatgate.core.errors import NotFound
from chatgate.core.revision import Revision
from chatgate.core.time import utcnow
from chatgate.usage.models import ModelPrice

REVISION_KEY = "chatgate:prices:revision"
LOAD_SECONDS = 5.0  # a price table that cannot be read in this time: the last one is kept
log = logging.getLogger("chatgate.usage.prices")


@dataclass(frozen=True, slots=True)
class Price:
    model: str
    input_per_million: float
    output_per_million: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000


def price_not_found() -> NotFound:
    return NotFound("no price is set for this model", code="price_not_found")


class Prices:
    def __init__(self, *, database: Database, redis: Redis | None) -> None:
        self._database = database
        self._revision = Revision(redis, REVISION_KEY)
        self._by_model: dict[str, Price] = {}
        self._loaded_revision: int | None = None
        self._lock = asyncio.Lock()

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """The call's cost at the prices last loaded; 0 for a model with no price."""
        price = self._by_model.get(model)
        return 0.0 if price is None else price.cost(prompt_tokens, completion_tokens)

    async def refresh(self) -> dict[str, Price]:
        """The prices now, loaded again when any process changed one. A database that cannot
        be read leaves the last prices in use (and says so), never none."""
        revision = await self._revision.current()
        if revision == self._loaded_revision:
            return self._by_model
        async with self._lock:
            if revision != self._loaded_revision:
                try:
                    async with asyncio.timeout(LOAD_SECONDS), self._database.session() as db:
                        rows = (await db.scalars(select(ModelPrice))).all()
                except (SQLAlchemyError, OSError, TimeoutError) as exc:
                    log.warning("cannot read the prices; the last ones stay in use: %r", exc)
                    return self._by_model
                self._by_model = {
                    row.model: Price(row.model, row.input_per_million, row.output_per_million)
                    for row in rows
                }
                self._loaded_revision = revision
        return self._by_model

    async def seed(self, configured: dict[str, PriceConfig]) -> None:
        """Adds the configured prices of models the table does not have yet: an admin's price
        is never overwritten by the file, and several processes may seed at once."""
        if configured:
            now = utcnow()
            rows = [
                {"model": model, **price.model_dump(), "updated_at": now}
                for model, price in configured.items()
            ]
            async with self._database.session() as db:
                dialect = self._database.engine.dialect.name
                insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
                await db.execute(insert(ModelPrice).values(rows).on_conflict_do_nothing())
                await db.commit()
        await self._changed()

    async def put(self, *, model: str, price: PriceConfig, user_id: str) -> Price:
        async with self._database.session() as db:
            row = await db.get(ModelPrice, model)
            before = None if row is None else [row.input_per_million, row.output_per_million]
            if row is None:
                row = ModelPrice(model=model)
                db.add(row)
            row.input_per_million = price.input_per_million
            row.output_per_million = price.output_per_million
            row.updated_at = utcnow()
            record_audit_event(
                db, action="price.updated", user_id=user_id, target_type="model",
                target_id=model, details={"from": before, "to": list(price.model_dump().values())},
            )  # fmt: skip
            await db.commit()
        await self._changed()
        return Price(model, price.input_per_million, price.output_per_million)

    async def delete(self, *, model: str, user_id: str) -> None:
        async with self._database.session() as db:
            deleted = await db.execute(delete(ModelPrice).where(ModelPrice.model == model))
            if not deleted.rowcount:  # type: ignore[attr-defined]
                raise price_not_found()
            record_audit_event(
                db, action="price.deleted", user_id=user_id, target_type="model", target_id=model
            )
            await db.commit()
        await self._changed()

    async def _changed(self) -> None:
        """After a change is saved: this process reloads now, and the others are told."""
        self._loaded_revision = None
        await self._revision.bump()
        await self.refresh()
