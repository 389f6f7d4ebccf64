"""The data keys travel apart from the data: an archive taken before a user was erased (which
destroys their data key), restored with a keys file taken after, gives everyone back but that
user, whose text stays ciphertext (read as empty): erased from the older archive too."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.backup.conftest import Source
from tests.backup.helpers import history_pages, run_chatgate_command
from tests.conftest import make_token, serve_chatgate


async def test_an_older_archive_with_newer_keys_forgets_the_erased(
    source: Source, tmp_path: Path
) -> None:
    later = tmp_path / "later.db"
    later_url = f"sqlite+aiosqlite:///{later}"
    result = await run_chatgate_command(later_url, tmp_path, "restore", str(source.archive))
    assert result.returncode == 0, result.stderr
    async with serve_chatgate(source.settings_for(later_url)) as served:
        headers = {"Authorization": f"Bearer {make_token('dpo', admin=True)}"}
        async with httpx.AsyncClient(base_url=served, headers=headers) as admin:
            erased = await admin.delete("/v1/admin/users/backup-bob")
            assert erased.status_code == 204, erased.text
            audit = await admin.get("/v1/admin/audit", params={"action": "user.erased"})
            assert audit.json()["data"][0]["details"]["removed"]["data_keys"] == 1
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
