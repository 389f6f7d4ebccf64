"""The data keys travel apart from the data: an archive taken before a user's key was destroyed,
restored with a keys file taken after, gives everyone back but that user, whose text stays
ciphertext (read as empty)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.backup.conftest import Source
from tests.backup.helpers import history_pages, run_chatgate_command
from tests.conftest import serve_chatgate


def _destroy_key(database: Path, owner: str) -> None:
    """What erasure does to the key (vault.Vault.destroy): the row goes."""
    with sqlite3.connect(database) as db:
        assert db.execute("DELETE FROM data_keys WHERE owner = ?", (owner,)).rowcount == 1


async def test_an_older_archive_with_newer_keys_forgets_the_erased(
    source: Source, tmp_path: Path
) -> None:
    later = tmp_path / "later.db"
    later_url = f"sqlite+aiosqlite:///{later}"
    result = await run_chatgate_command(later_url, tmp_path, "restore", str(source.archive))
    assert result.returncode == 0, result.stderr
    _destroy_key(later, "backup-bob")
    result = await run_chatgate_command(later_url, tmp_path, "backup", "later.bak")
    assert result.returncode == 0, result.stderr

    url = f"sqlite+aiosqlite:///{tmp_path}/restored.db"
    args = ("restore", str(source.archive), "--keys", "later.bak.keys")
    result = await run_chatgate_command(url, tmp_path, *args)
    assert result.returncode == 0, result.stderr
    async with serve_chatgate(source.settings_for(url)) as served:
        for user, session_id in source.made["sessions"]:
            pages = await history_pages(served, user, session_id)
            texts = [m["content"] for page in pages for m in page["data"]]
            if user == "backup-bob":
                assert texts == [""] * 6
            else:
                assert all(user in text for text in texts), texts
