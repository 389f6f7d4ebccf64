"""Streams across two chatgate processes sharing PostgreSQL and Redis: an answer written by one is
resumed and stopped from the other. (tests/replicas runs three behind a real load balancer, and
kills and drains them for real.)"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from chatgate.core.config import Settings
from tests.conftest import Gateway, open_caller, parse_sse, remote_only_settings, serve_chatgate

# Each question new: an answer the cache holds would not be streamed.
NONCE = secrets.token_hex(4)
REDIS_URL = "redis://127.0.0.1:6379/0"
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _shared(database_url: str, gateway: Gateway) -> Settings:
    return remote_only_settings(
        database_url, gateway.double.url, redis_url=REDIS_URL,
        task_queue=f"chatgate-test:{secrets.token_hex(4)}",
    )  # fmt: skip


async def _first_events(
    http: Any, path: str, body: dict[str, Any], deltas: int
) -> list[dict[str, Any]]:
    raw = ""
    async with http.stream("POST", path, json=body) as response:
        async for chunk in response.aiter_text():
            raw += chunk
            if raw.count("event: delta") >= deltas and raw.endswith("\n\n"):
                break
    return parse_sse(raw)


async def test_a_stream_begun_on_one_process_resumes_and_stops_on_another(
    database_url: str, gateway: Gateway
) -> None:
    settings = _shared(database_url, gateway)
    async with (
        serve_chatgate(settings) as first,
        serve_chatgate(settings) as second,
        open_caller(first) as on_first,
        open_caller(second, on_first.user_id) as on_second,
    ):
        session = await on_first.new_session("echo")
        messages = f"/v1/sessions/{session['id']}/messages"
        seen = await _first_events(
            on_first.http,
            messages,
            {"content": f"[[slow 30 0.05]] {NONCE}", "response_mode": "streaming"},
            3,
        )
        answer_id = seen[0]["data"]["message_id"]
        resumed = await on_second.http.get(
            f"{messages}/{answer_id}/events", headers={"Last-Event-ID": seen[-1]["id"]}
        )
        events = seen + parse_sse(resumed.text)
        assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["event"] == "message_end"
        assert events[-1]["data"]["message"]["content"] == "".join(f"w{i} " for i in range(30))

        # Stopped from the other process: the writer stops it, its text kept.
        seen = await _first_events(
            on_first.http,
            messages,
            {"content": f"[[slow 300 0.03]] {NONCE}", "response_mode": "streaming"},
            3,
        )
        stop = (await on_second.http.post(f"/v1/sessions/{session['id']}/stop")).json()
        assert stop["stopped"] is True, stop
        assert stop["message"]["status"] == "interrupted"
        kept = stop["message"]["content"]
        assert kept.startswith("w0 w1 w2") and len(kept.split()) < 300
        answer_id = seen[0]["data"]["message_id"]
        replay = parse_sse((await on_second.http.get(f"{messages}/{answer_id}/events")).text)
        assert replay[-1]["data"]["message"]["content"] == kept
