"""Draining on SIGTERM, as an orchestrator stops `chatgate serve`: no new connections, running
answers finish within the grace period whether or not their client is still there, the rest end
`interrupted` with their text and an `error` event that tells the client to resume elsewhere."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Double, parse_sse
from tests.gateway.test_tls import double_config
from tests.serve_process import chatgate_serve, serve_environment


async def _stream_until(http: httpx.AsyncClient, session_id: str, content: str, deltas: int) -> Any:
    """Starts a streamed answer and hands back its open response once `deltas` deltas came."""
    request = http.build_request(
        "POST", f"/v1/sessions/{session_id}/messages",
        json={"content": content, "response_mode": "streaming"},
    )  # fmt: skip
    response = await http.send(request, stream=True)
    raw = ""
    chunks = response.aiter_text()
    async for chunk in chunks:
        raw += chunk
        if raw.count("event: delta") >= deltas and raw.endswith("\n\n"):
            break
    return response, chunks, raw


async def _rest(chunks: Any, raw: str) -> list[dict[str, Any]]:
    async for chunk in chunks:
        raw += chunk
    return parse_sse(raw)


async def test_sigterm_lets_answers_finish_within_the_grace_then_ends_the_rest(
    tmp_path: Path, openai_double: Double
) -> None:
    nonce = secrets.token_hex(4)
    env = serve_environment(
        tmp_path, CHATGATE_AUTH_MODE="none", UP_KEY="sk-double", CHATGATE_DRAIN_GRACE_SECONDS="3"
    )
    with chatgate_serve(tmp_path, double_config(openai_double), env=env) as served:
        assert served.process is not None
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            sessions = [
                (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()["id"]
                for _ in range(3)
            ]
            short = await _stream_until(http, sessions[0], f"[[slow 20 0.05]] {nonce}", 2)
            long = await _stream_until(http, sessions[1], f"[[slow 300 0.05]] {nonce}", 2)
            left = await _stream_until(http, sessions[2], f"[[slow 30 0.05]] {nonce}", 2)
            await left[0].aclose()  # its client goes away: the answer goes on
            signalled = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            # The balancer's next check finds no process taking connections (or a 503).
            try:
                async with httpx.AsyncClient(timeout=2) as fresh:
                    ready = await fresh.get(f"{served.url}/ready")
                assert ready.status_code == 503, ready.text
            except httpx.TransportError:
                pass
            short_events = await _rest(short[1], short[2])
            long_events = await _rest(long[1], long[2])
            ended_after = time.monotonic() - signalled
            # Ended by the signal once drained, as uvicorn re-raises it after a graceful exit.
            assert await asyncio.to_thread(served.process.wait, 20) in (0, -signal.SIGTERM)
    assert short_events[-1]["event"] == "message_end"
    assert short_events[-1]["data"]["message"]["status"] == "complete"
    assert long_events[-1]["event"] == "error", long_events[-1]
    assert long_events[-1]["data"]["error"]["code"] == "server_shutting_down"
    cut = long_events[-1]["data"]["message"]
    assert cut["status"] == "interrupted"
    streamed = "".join(e["data"]["text"] for e in long_events if e["event"] == "delta")
    assert cut["content"] == streamed and 2 <= len(streamed.split()) < 300
    assert 2.5 <= ended_after < 10, ended_after
    # What was stored, read by the next process on the same database.
    with chatgate_serve(tmp_path, double_config(openai_double), env=env) as again:
        async with httpx.AsyncClient(base_url=again.url, timeout=10) as http:
            pages = [
                (await http.get(f"/v1/history/{session_id}")).json()["data"][1]
                for session_id in sessions
            ]
    assert [p["status"] for p in pages] == ["complete", "interrupted", "complete"]
    assert pages[1]["content"] == streamed
    assert pages[2]["content"] == "".join(f"w{i} " for i in range(30))
