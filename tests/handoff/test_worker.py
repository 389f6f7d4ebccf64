"""An async answer a `chatgate worker` writes hands off too when its engine chain fails."""

from __future__ import annotations

import secrets
from pathlib import Path

from chatgate.core.policies import HANDOFF_MESSAGE
from tests.conftest import Double, open_caller, serve_chatgate
from tests.handoff.conftest import Receiver, eventually, handoff_of, handoff_settings, send
from tests.tasks.test_worker import REDIS_URL, workers


async def test_a_failed_queued_answer_hands_off(
    database_url: str, openai_double: Double, receiver: Receiver, tmp_path: Path
) -> None:
    settings = handoff_settings(
        database_url, openai_double, receiver.url, redis_url=REDIS_URL,
        task_queue=f"chatgate-test:{secrets.token_hex(4)}",
    )  # fmt: skip
    async with serve_chatgate(settings) as url, open_caller(url) as user:
        with workers(settings, tmp_path):
            session = await user.new_session("h-fail")
            queued = await send(user, session["id"], "[[status 400]] queued question", "async")
            assert queued.status_code == 202, queued.text
            task_id = queued.json()["task_id"]

            async def failed() -> bool:
                task = (await user.http.get(f"/v1/tasks/{task_id}")).json()
                return task["status"] == "failed"  # type: ignore[no-any-return]

            await eventually(failed)

            async def handed_off() -> bool:
                return await handoff_of(user, session["id"]) is not None

            await eventually(handed_off, within=5)
        assert await handoff_of(user, session["id"]) == {
            "status": "waiting", "reason": "engine_failed",
        }  # fmt: skip
        history = await user.history(session["id"])
        assert [m["content"] for m in history["data"]][-1] == HANDOFF_MESSAGE
