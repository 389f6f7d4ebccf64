"""`Annotated` dependency aliases for what core owns: the settings, the database and a session.

Each domain's `deps.py` has its own (the caller in `auth/deps.py`, assistants in
`assistants/deps.py`, engines in `providers/deps.py`), all read from the runtime by type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.config import Settings
from chatgate.core.db import Database
from chatgate.core.parts import part

# Every dependency is `async def`: FastAPI runs a plain `def` in a thread pool, which cost about
# a tenth of a request's CPU on the gateway benchmark.

SettingsDep = Annotated[Settings, Depends(part(Settings))]
DatabaseDep = Annotated[Database, Depends(part(Database))]


async def _db_session(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    async with database.session() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_db_session)]
