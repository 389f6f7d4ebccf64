"""One small deployment on the embedded default (SQLite), filled over HTTP and backed up while
it serves: the archive the backup suites restore, check and damage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backup.helpers import fill_deployment, run_chatgate_command
from tests.conftest import Double, remote_only_settings, serve_chatgate


@dataclass
class Source:
    database_url: str
    archive: Path
    made: dict[str, Any]
    settings_for: Any  # database URL -> Settings, as the source was served


@pytest.fixture(scope="module")
async def source(
    openai_double: Double, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Source]:
    folder = tmp_path_factory.mktemp("backup-source")
    database_url = f"sqlite+aiosqlite:///{folder}/chatgate.db"

    def settings_for(url: str) -> Any:
        return remote_only_settings(url, openai_double.url)

    async with serve_chatgate(settings_for(database_url)) as url:
        made = await fill_deployment(url)
        made["history_url"] = url
        result = await run_chatgate_command(database_url, folder, "backup", "chatgate.bak")
        assert result.returncode == 0, result.stderr
        yield Source(database_url, folder / "chatgate.bak", made, settings_for)
