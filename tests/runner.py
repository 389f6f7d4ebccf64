"""Runs a real chatgate (migrations, app factory, uvicorn) on a free loopback port in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import uvicorn

from chatgate.core.config import Settings
from chatgate.core.migrate import upgrade_database
from chatgate.main import create_app
from tests.doubles.server import free_port


@contextmanager
def run_chatgate(settings: Settings, port: int | None = None) -> Iterator[str]:
    # Alembic runs its own event loop: a thread of its own keeps it apart from a test's loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade_database, settings.database_url).result()
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"chatgate-{port}")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("chatgate did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
