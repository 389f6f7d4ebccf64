"""A conversation held through the Responses API moves with `chatgate backup` and `restore`
from the embedded default (SQLite) to PostgreSQL: the stored response reads back as it was
answered, its history with its calls and results, and it goes on from the restored copy."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.backup.helpers import fresh_postgres, run_chatgate_command
from tests.conftest import Double, remote_only_settings, serve_chatgate
from tests.responses.conftest import WEATHER, open_client, session_of


async def test_a_responses_conversation_survives_backup_and_restore(
    openai_double: Double, tmp_path: Path
) -> None:
    source_url = f"sqlite+aiosqlite:///{tmp_path}/chatgate.db"
    async with serve_chatgate(remote_only_settings(source_url, openai_double.url)) as url:
        client = open_client(url, "backup-responses")
        asked = client.sdk.responses.create(model="echo", input="weather in Baku?", tools=[WEATHER])
        call = next(item for item in asked.output if item.type == "function_call")
        answered = client.sdk.responses.create(
            model="echo",
            previous_response_id=asked.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "25 C"}],
        )
        history = client.history(session_of(asked))
        stored = client.http.get(f"/v1/responses/{answered.id}").json()
        taken = await run_chatgate_command(source_url, tmp_path, "backup", "chatgate.bak")
        assert taken.returncode == 0, taken.stderr

    pg = fresh_postgres()
    target_url = await asyncio.to_thread(pg.__enter__)
    try:
        restored = await run_chatgate_command(target_url, tmp_path, "restore", "chatgate.bak")
        assert restored.returncode == 0, restored.stderr
        async with serve_chatgate(remote_only_settings(target_url, openai_double.url)) as url:
            client = open_client(url, "backup-responses")
            assert client.http.get(f"/v1/responses/{answered.id}").json() == stored
            assert client.history(session_of(asked)) == history
            more = client.sdk.responses.create(
                model="echo", input="thanks", previous_response_id=answered.id
            )
            assert more.output_text == "echo: thanks"
            sent = openai_double.api.requests[-1]["messages"]
            assert [m["role"] for m in sent[1:]] == [
                "user",
                "assistant",
                "tool",
                "assistant",
                "user",
            ]
            assert sent[2]["tool_calls"][0]["id"] == call.call_id
    finally:
        await asyncio.to_thread(pg.__exit__, None, None, None)
