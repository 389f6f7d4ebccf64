"""Several workers start at once on a fresh database and all seed the configured assistants."""

from __future__ import annotations

import asyncio

from chatgate.assistants.service import AssistantCatalog
from chatgate.core.config import DEFAULT_ASSISTANTS
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database


async def test_concurrent_seeding_succeeds_everywhere(database_url: str) -> None:
    await asyncio.to_thread(upgrade_database, database_url)
    databases = [Database(database_url) for _ in range(4)]
    catalogs = [
        AssistantCatalog(database=db, redis=None, provider_ids={"local"}) for db in databases
    ]
    try:
        # Each catalog seeds through its own engine, as separate worker processes would.
        await asyncio.gather(*(catalog.seed(DEFAULT_ASSISTANTS) for catalog in catalogs))
        await asyncio.gather(*(catalog.seed(DEFAULT_ASSISTANTS) for catalog in catalogs))
        ids = sorted(a.id for a in await catalogs[0].enabled())
    finally:
        for db in databases:
            await db.close()
    assert {a.id for a in DEFAULT_ASSISTANTS} <= set(ids)
    assert len(ids) == len(set(ids))
