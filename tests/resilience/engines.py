"""Engines that fail on demand, over real sockets: an OpenAI-compatible double that can be told
to fail for everyone and to come back, and a port whose listener never accepts a connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from aiohttp import web

from tests.doubles.openai_api import OpenAIDouble


@dataclass
class SwitchableEngine:
    """OpenAI's chat-completions API (the double's, directives included) unless told otherwise:

    mode "status": every call answers `status` (with `retry_after` on a 429);
    mode "hang": every call waits forever; `fail_next`: the next N calls answer `status`.
    `calls` counts every call that reached it.
    """

    api: OpenAIDouble = field(default_factory=lambda: OpenAIDouble(api_key="sk-double"))
    mode: str = "healthy"
    status: int = 500
    retry_after: str | None = None
    fail_next: int = 0
    calls: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        return app

    def healthy(self) -> None:
        self.mode, self.fail_next, self.retry_after = "healthy", 0, None

    def failing(self, status: int = 500, *, retry_after: str | None = None) -> None:
        self.mode, self.status, self.retry_after = "status", status, retry_after

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if self.fail_next > 0 or self.mode == "status":
            self.fail_next = max(self.fail_next - 1, 0)
            response = self.api.error(self.status, f"The engine was told to answer {self.status}.")
            if self.retry_after is not None:
                response.headers["Retry-After"] = self.retry_after
            return response
        if self.mode == "hang":
            await asyncio.sleep(3600)
        return await self.api.chat_completions(request)


@contextmanager
def unaccepting_port() -> Iterator[int]:
    """A port that listens but never accepts: once its backlog is full, connecting times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):  # a non-blocking connect is still under way
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in (*fillers, server):
            sock.close()
