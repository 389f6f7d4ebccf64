"""Conversations sealed at rest, on SQLite and PostgreSQL: what chatgate stores of a message's
text, its citations and a session's title is ciphertext (grep over the SQLite files and over
pg_dump finds none of it), what users read back is their text; wrong, missing and rotated keys."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Text, select, type_coerce
from sqlalchemy.engine import make_url

from chatgate.chat.models import ChatSession, Message
from chatgate.core.config import ConfigError, Settings
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.vault.keyring import KeyRing, load_keyring, new_key_line
from chatgate.vault.models import DataKeyRow
from chatgate.vault.service import Vault
from tests.chat.test_one_turn_at_a_time import fresh_database
from tests.conftest import TEST_ENCRYPTION_KEYS, Caller, Gateway, read_database


def found_in_storage(database_url: str, marker: str) -> bool:
    """Whether the marker is anywhere in the database's storage: its SQLite files (read by a
    child process: closing the file here would drop SQLite's locks), or a dump of PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        files = [p for p in Path(str(url.database)).parent.glob("chatgate.db*")]
        found = subprocess.run(["grep", "-rlaF", marker, *map(str, files)], capture_output=True)
        return found.returncode == 0
    assert shutil.which("pg_dump"), "pg_dump is needed to check PostgreSQL's storage"
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--data-only", str(url.database)],
        capture_output=True, check=True,
    )  # fmt: skip
    return marker.encode() in dump.stdout


async def test_message_text_and_titles_are_stored_sealed_and_read_back_in_the_clear(
    alice: Caller, gateway: Gateway
) -> None:
    marker = f"secret-{secrets.token_hex(6)}"
    session = await alice.new_session("echo", title=f"Title {marker}")
    sent = await alice.http.post(
        f"/v1/sessions/{session['id']}/messages", json={"content": f"My card {marker} is lost"}
    )
    assert sent.status_code == 200, sent.text
    history = await alice.history(session["id"])
    texts = [m["content"] for m in history["data"]]
    assert texts[0] == f"My card {marker} is lost" and marker in texts[1]  # the double echoes
    listed = (await alice.http.get("/v1/sessions")).json()["data"]
    assert any(s["title"] == f"Title {marker}" for s in listed)

    async with read_database(gateway.settings.database_url) as db:
        raw = (
            await db.execute(
                select(type_coerce(Message.content, Text)).where(
                    Message.session_id == uuid.UUID(session["id"])
                )
            )
        ).scalars()
        stored = list(raw)
        title = await db.scalar(
            select(type_coerce(ChatSession.title, Text)).where(
                ChatSession.id == uuid.UUID(session["id"])
            )
        )
    assert len(stored) == 2 and all(s.startswith("cg1:") for s in stored), stored
    assert title is not None and title.startswith("cg1:")
    assert not found_in_storage(gateway.settings.database_url, marker)


async def fresh_vault(url: str, keys: str | None) -> Vault:
    ring = None if keys is None else KeyRing.parse(keys)
    return Vault(Database(url), ring)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own: rotating keys here must not touch the other tests' data keys."""
    async with fresh_database(request.param, str(tmp_path)) as url:
        await asyncio.to_thread(upgrade_database, url)
        yield url


async def test_wrong_missing_and_rotated_keys(database: str) -> None:
    owner = f"user-{secrets.token_hex(4)}"
    vault = await fresh_vault(database, TEST_ENCRYPTION_KEYS)
    await vault.start()
    sealed = (await vault.cipher(owner)).seal("the text")
    assert vault.open(sealed) == "the text"
    await vault.close()

    wrong = "test1:" + new_key_line().split(":", 1)[1]
    with pytest.raises(ConfigError, match="not the key"):
        await (await fresh_vault(database, wrong)).start()
    with pytest.raises(ConfigError, match="lacks"):
        await (await fresh_vault(database, new_key_line("other"))).start()
    with pytest.raises(ConfigError, match="holds encrypted conversations"):
        await (await fresh_vault(database, None)).start()

    # Rotation: the newest key wraps every data key; then the old one may go.
    newest = new_key_line("k2")
    rotating = await fresh_vault(database, f"{newest},{TEST_ENCRYPTION_KEYS}")
    await rotating.start()
    assert await rotating.rotate(batch=1) >= 1
    await rotating.close()
    only_new = await fresh_vault(database, newest)
    await only_new.start()
    assert (await only_new.cipher(owner)).ref == sealed.split(":")[1]
    assert only_new.open(sealed) == "the text"  # the data key did not change, only its wrapping

    # Destroyed: nothing it sealed opens again, in this process or any other.
    assert await only_new.destroy(owner)
    assert only_new.open(sealed) == ""
    async with read_database(database) as db:
        assert await db.get(DataKeyRow, owner) is None
    await only_new.close()


def test_the_embedded_default_makes_an_owner_only_key_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "encryption.keys"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db", encryption_keys=None,
        encryption_key_file=str(path),
    )  # fmt: skip
    first = load_keyring(settings)
    assert first is not None and path.stat().st_mode & 0o777 == 0o600
    again = load_keyring(settings)
    assert again is not None and again.newest == first.newest == "k1"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="owner only"):
        load_keyring(settings)


def test_production_refuses_to_start_without_keys_unless_turned_off() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1/test"
    with pytest.raises(ConfigError, match="CHATGATE_ENCRYPTION_KEYS"):
        load_keyring(Settings(database_url=url, encryption_keys=None))
    assert load_keyring(Settings(database_url=url, encryption_enabled=False)) is None
    with pytest.raises(ConfigError, match="32 bytes"):
        KeyRing.parse("k1:QUJD")


def test_rotate_keys_seals_rows_stored_in_the_clear(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/chatgate.db"
    env = {**os.environ, "CHATGATE_DATABASE_URL": url, "CHATGATE_ENCRYPTION_ENABLED": "false"}
    script = (
        "import asyncio, sys\n"
        "from chatgate.core.db import Database\n"
        "from chatgate.core.migrate import upgrade_database\n"
        "from chatgate.chat.models import ChatSession, Message\n"
        "async def main(url):\n"
        "    database = Database(url)\n"
        "    async with database.session() as db:\n"
        "        s = ChatSession(user_id='u1', assistant_id='echo', title='clear title')\n"
        "        db.add(s); await db.flush()\n"
        "        db.add(Message(session_id=s.id, role='user', content='clear text'))\n"
        "        await db.commit()\n"
        "    await database.close()\n"
        "upgrade_database(sys.argv[1])\n"
        "asyncio.run(main(sys.argv[1]))\n"
    )
    subprocess.run([sys.executable, "-c", script, url], env=env, check=True)
    env = {**os.environ, "CHATGATE_DATABASE_URL": url}
    rotated = subprocess.run(
        [sys.executable, "-m", "chatgate.cli", "rotate-keys", "--batch", "1"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "2 rows sealed" in rotated.stdout, rotated.stdout
    assert not found_in_storage(url, "clear text") and not found_in_storage(url, "clear title")
