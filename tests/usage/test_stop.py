"""Nothing recorded is lost when `chatgate serve` is stopped: a SIGTERM'd process writes the usage
it still holds after its answers are drained, so the calls finished before the signal and the
answers that finish during the drain are all in the ledger when it exits."""

from __future__ import annotations

import asyncio
import secrets
import signal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from chatgate.usage.models import UsageRecord
from tests.conftest import Double
from tests.gateway.test_tls import double_config
from tests.serve_process import chatgate_serve, serve_environment

FINISHED = 6  # calls done before the signal
DRAINED = 3  # answers still streaming when it comes


async def _stream_started(http: httpx.AsyncClient, content: str) -> tuple[Any, str]:
    """A streamed answer's rest, once its first delta came, and what came so far."""
    session = (await http.post("/v1/sessions", json={"assistant_id": "echo"})).json()
    request = http.build_request(
        "POST", f"/v1/sessions/{session['id']}/messages",
        json={"content": content, "response_mode": "streaming"},
    )  # fmt: skip
    response = await http.send(request, stream=True)
    chunks = response.aiter_text()
    raw = ""
    async for chunk in chunks:
        raw += chunk
        if "event: delta" in raw:
            return chunks, raw
    raise AssertionError(f"the answer never started: {raw}")


async def test_sigterm_writes_every_recorded_call_before_exit(
    tmp_path: Path, openai_double: Double
) -> None:
    nonce = secrets.token_hex(4)
    # The writer's timer never fires in this test: whatever is written, close wrote.
    env = serve_environment(
        tmp_path, CHATGATE_AUTH_MODE="none", UP_KEY="sk-double",
        CHATGATE_DRAIN_GRACE_SECONDS="10", CHATGATE_USAGE_WRITE_SECONDS="300",
    )  # fmt: skip
    with chatgate_serve(tmp_path, double_config(openai_double), env=env) as served:
        assert served.process is not None
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            for i in range(FINISHED):
                body = {"model": "echo", "messages": [{"role": "user", "content": f"{i} {nonce}"}]}
                assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
            streams = [
                await _stream_started(http, f"[[slow 20 0.1]] {i} {nonce}") for i in range(DRAINED)
            ]
            served.process.send_signal(signal.SIGTERM)
            for chunks, raw in streams:
                text = raw + "".join([chunk async for chunk in chunks])
                assert "message_end" in text, text
            assert await asyncio.to_thread(served.process.wait, 30) in (0, -signal.SIGTERM)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/chatgate.db")
    try:
        async with engine.connect() as conn:
            written = await conn.scalar(select(func.sum(UsageRecord.calls)))
            by_route = select(UsageRecord.route, func.sum(UsageRecord.calls)).group_by(
                UsageRecord.route
            )
            routes = dict((await conn.execute(by_route)).all())
    finally:
        await engine.dispose()
    assert written == FINISHED + DRAINED
    assert routes == {"chat_completions": FINISHED, "chat": DRAINED}
    assert f"usage ledger: {FINISHED + DRAINED} calls written at close" in served.output_text()
