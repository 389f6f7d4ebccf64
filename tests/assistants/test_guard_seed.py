"""An assistant created with the admin API and no guards gets the seeded ones: personal data
masked and injection flagged on an engine outside the deployment, off on the bundled model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chatgate.assistants.schemas import AssistantCreate
from chatgate.assistants.service import AssistantCatalog
from chatgate.auth.service import LOCAL_USER
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.core.policies import GuardPolicy


@pytest.fixture
async def catalog(database_url: str) -> AsyncIterator[AssistantCatalog]:
    await asyncio.to_thread(upgrade_database, database_url)
    database = Database(database_url)
    try:
        yield AssistantCatalog(
            database=database, redis=None, provider_ids={"local", "cloud"},
            local_providers={"local"},
        )  # fmt: skip
    finally:
        await database.close()


def spec(assistant_id: str, provider: str, **fields: object) -> AssistantCreate:
    return AssistantCreate.model_validate(
        {"id": assistant_id, "name": assistant_id, "provider": provider, "model": "m", **fields}
    )


async def test_created_assistants_get_the_guards_of_their_engine(
    catalog: AssistantCatalog,
) -> None:
    suffix = id(catalog) % 100_000
    cases = {
        f"seed-cloud-{suffix}": (spec(f"seed-cloud-{suffix}", "cloud"), ("mask", "flag")),
        f"seed-local-{suffix}": (spec(f"seed-local-{suffix}", "local"), ("off", "off")),
        f"seed-named-{suffix}": (
            spec(f"seed-named-{suffix}", "cloud", guards={"injection": "block"}),
            ("off", "block"),
        ),
    }
    for assistant_id, (body, _) in cases.items():
        await catalog.create(user=LOCAL_USER, spec=body)
        row = await catalog.row(assistant_id)
        assert GuardPolicy.model_validate(row.guards) == (await catalog.get(assistant_id)).guards
    for assistant_id, (_, expected) in cases.items():
        guards = (await catalog.get(assistant_id)).guards
        assert (guards.pii, guards.injection) == expected, assistant_id
