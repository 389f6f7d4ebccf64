"""`chatgate rotate-keys` seals what the Responses API stored while encryption was off: the
stored response objects, and the calls of an answer that has no text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.vault.test_encryption_at_rest import found_in_storage

STORE_IN_THE_CLEAR = """
import asyncio, sys
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.chat.models import ChatSession, Message
from chatgate.responses.models import StoredResponse

async def main(url):
    database = Database(url)
    async with database.session() as db:
        s = ChatSession(user_id="u1", assistant_id="echo", title="")
        db.add(s)
        await db.flush()
        calls = [{"id": "call_1", "name": "clear_function", "arguments": "{}"}]
        m = Message(session_id=s.id, role="assistant", content="", tool_calls=calls)
        db.add(m)
        await db.flush()
        body = {"id": "resp_1", "output_text": "clear answer"}
        db.add(StoredResponse(id="resp_1", user_id="u1", session_id=s.id, message_ids=[str(m.id)],
                              body=body))
        await db.commit()
    await database.close()

upgrade_database(sys.argv[1])
asyncio.run(main(sys.argv[1]))
"""


def test_rotate_keys_seals_responses_stored_in_the_clear(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/chatgate.db"
    env = {**os.environ, "CHATGATE_DATABASE_URL": url, "CHATGATE_ENCRYPTION_ENABLED": "false"}
    subprocess.run([sys.executable, "-c", STORE_IN_THE_CLEAR, url], env=env, check=True)
    assert found_in_storage(url, "clear answer") and found_in_storage(url, "clear_function")
    rotated = subprocess.run(
        [sys.executable, "-m", "chatgate.cli", "rotate-keys", "--batch", "1"],
        env={**os.environ, "CHATGATE_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "2 rows sealed" in rotated.stdout, rotated.stdout
    assert not found_in_storage(url, "clear answer")
    assert not found_in_storage(url, "clear_function")
