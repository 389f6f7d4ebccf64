"""Liveness and readiness, and the one answer every unexpected failure gets."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from chatgate.core.migrate import upgrade_database
from chatgate.main import create_app
from tests.conftest import (
    PG_ADMIN_URL,
    Double,
    Gateway,
    _create_pg_database,
    _drop_pg_database,
    remote_only_settings,
    serve_chatgate,
)
from tests.doubles.server import free_port


async def test_health_needs_no_credentials(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}
    assert len(response.headers["x-trace-id"]) == 32


async def test_ready_reports_its_checks(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        response = await http.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert all(result == "ok" for result in body["checks"].values())
    assert response.headers["x-trace-id"]


async def test_ready_is_503_when_the_database_goes_away(openai_double: Double) -> None:
    name = f"chatgate_ready_{secrets.token_hex(4)}"
    await _create_pg_database(name)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    settings = remote_only_settings(f"{base}/{name}", openai_double.url)
    try:
        async with serve_chatgate(settings) as url, httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/ready")).status_code == 200
            await _drop_pg_database(name)
            for _ in range(2):
                response = await http.get("/ready")
                assert response.status_code == 503, response.text
                body = response.json()
                assert body["status"] == "not_ready"
                assert body["checks"]["database"].startswith("failed: ")
            # Liveness is not readiness: the process itself is fine.
            assert (await http.get("/health")).status_code == 200
    finally:
        await _drop_pg_database(name)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """An app from `create_app`, under uvicorn with its lifespan, on a free loopback port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def test_an_unexpected_failure_is_a_500_envelope_with_the_trace_id(
    tmp_path: Path, openai_double: Double
) -> None:
    settings = remote_only_settings(f"sqlite+aiosqlite:///{tmp_path}/boom.db", openai_double.url)
    await asyncio.to_thread(upgrade_database, settings.database_url)
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    server = serve(app)
    url = await asyncio.to_thread(server.__enter__)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/boom")
            traced = await http.get("/boom", headers={"X-Request-ID": "req-boom-1"})
            metrics = (await http.get("/metrics")).text
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "a bug" not in response.text
    assert error["trace_id"] and error["trace_id"] == response.headers["x-trace-id"]
    assert traced.headers["x-trace-id"] == "req-boom-1"
    assert traced.json()["error"]["trace_id"] == "req-boom-1"
    assert any(
        line.startswith("chatgate_http_requests_total")
        and 'route="/boom"' in line
        and 'status="500"' in line
        for line in metrics.splitlines()
    ), metrics
