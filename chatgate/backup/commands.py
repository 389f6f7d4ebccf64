"""The two commands as steps: what `chatgate backup` and `chatgate restore` do, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.script import ScriptDirectory

from chatgate.backup.dump import back_up, key_file
from chatgate.backup.load import check_archives, restore
from chatgate.core.migrate import alembic_config, upgrade_database


def head_revision(database_url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert head is not None
    return head


def run_backup(database_url: str, path: Path) -> str:
    rows = asyncio.run(back_up(database_url, path, head=head_revision(database_url)))
    return (
        f"{sum(rows.values())} rows of {len(rows)} tables in {path} (data keys: {key_file(path)})"
    )


def run_restore(database_url: str, path: Path, *, keys: Path | None, force: bool) -> str:
    keys = keys or key_file(path)
    archives = check_archives(path, keys, head=head_revision(database_url))  # touches nothing
    upgrade_database(database_url)
    rows = asyncio.run(restore(database_url, archives, force=force))
    return f"{sum(rows.values())} rows of {len(rows)} tables restored from {path}"
