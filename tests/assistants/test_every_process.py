"""An operator's change of a prompt, and its rollback, take effect in every process: two
`chatgate serve` processes on one PostgreSQL and one Redis; a change saved through one answers
the very next request through the other."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import JWT_AUDIENCE, JWT_SECRET, Double, make_token
from tests.serve_process import chatgate_serve, serve_environment


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_prompt_changed_through_one_process_answers_through_the_other(
    tmp_path: Path, database_url: str, openai_double: Double
) -> None:
    assistant_id = f"prompted-{secrets.token_hex(3)}"
    config = {
        "providers": [
            {"id": "up", "type": "openai", "base_url": f"{openai_double.url}/v1",
             "api_key_env": "UP_KEY"},
        ],
        "assistants": [
            {"id": assistant_id, "name": "Prompted", "provider": "up", "model": "double-prompted",
             "system_prompt": "The seeded prompt.", "guards": {"pii": "off", "injection": "off"}},
        ],
    }  # fmt: skip
    env = serve_environment(
        tmp_path, CHATGATE_DATABASE_URL=database_url,
        CHATGATE_REDIS_URL="redis://127.0.0.1:6379/0", CHATGATE_AUTH_MODE="jwt",
        CHATGATE_JWT_SECRET=JWT_SECRET, CHATGATE_JWT_AUDIENCE=JWT_AUDIENCE, UP_KEY="sk-double",
    )  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    admin_headers = {"Authorization": f"Bearer {make_token('operator', admin=True)}"}
    user_headers = {"Authorization": f"Bearer {make_token(f'user-{uuid.uuid4().hex[:8]}')}"}
    with (
        chatgate_serve(tmp_path / "a", config, env=env) as first,
        chatgate_serve(tmp_path / "b", config, env=env) as second,
    ):
        async with (
            httpx.AsyncClient(base_url=first.url, headers=admin_headers, timeout=30) as on_a,
            httpx.AsyncClient(base_url=second.url, headers=user_headers, timeout=30) as on_b,
        ):
            session = (await on_b.post("/v1/sessions", json={"assistant_id": assistant_id})).json()

            async def prompt_seen_by_b() -> str:
                # A new question each time: no answer from the cache.
                content = f"[[system]] {secrets.token_hex(4)}"
                reply = await on_b.post(
                    f"/v1/sessions/{session['id']}/messages", json={"content": content}
                )
                assert reply.status_code == 200, reply.text
                return str(reply.json()["message"]["content"])

            path = f"/v1/admin/assistants/{assistant_id}"
            assert await prompt_seen_by_b() == "system: The seeded prompt."
            changed = await on_a.patch(path, json={"system_prompt": "The operator's prompt."})
            assert changed.json()["version"] == 2, changed.text
            assert await prompt_seen_by_b() == "system: The operator's prompt."
            rolled = await on_a.post(f"{path}/rollback", json={"version": 1})
            assert rolled.json()["version"] == 3, rolled.text
            assert await prompt_seen_by_b() == "system: The seeded prompt."
            listed = (await on_a.get(f"{path}/versions")).json()["data"]
    assert [(v["version"], v["config"]["system_prompt"]) for v in listed] == [
        (3, "The seeded prompt."), (2, "The operator's prompt."), (1, "The seeded prompt."),
    ]  # fmt: skip
    assert [v["user_id"] for v in listed] == ["operator", "operator", None]
