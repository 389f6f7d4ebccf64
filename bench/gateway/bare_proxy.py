"""The floors: the least a FastAPI + aiohttp gateway can do, on the same stack as chatgate, and
the least uvicorn + aiohttp can do with no framework at all (`--asgi`).

No auth, no validation, no mapping: the body is passed to the upstream as it came and the
answer back as it came, streamed or not. Whatever chatgate costs above the FastAPI row is
chatgate's; the ASGI row is what the server and the HTTP client cost by themselves.

    .venv/bin/python bench/gateway/bare_proxy.py PORT UPSTREAM_URL [--asgi]
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


def create_app(upstream: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        yield
        await app.state.http.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        body = await request.body()
        headers = {"Content-Type": "application/json"}
        response = await request.app.state.http.post(upstream, data=body, headers=headers)
        if not response.content_type.startswith("text/event-stream"):
            content = await response.read()
            response.release()
            return Response(content, status_code=response.status, media_type="application/json")

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for data in response.content.iter_any():
                    yield data
            finally:
                response.release()

        return StreamingResponse(relay(), media_type="text/event-stream")

    return app


def create_asgi_app(upstream: str) -> Any:
    """The same pass-through as a bare ASGI callable: no routing, no request object."""
    clients: list[aiohttp.ClientSession] = []
    json_type = [(b"content-type", b"application/json")]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            clients.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)))
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await clients[0].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": json_type})
            await send({"type": "http.response.body", "body": b'{"status":"healthy"}'})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {"Content-Type": "application/json"}
        async with clients[0].post(upstream, data=body, headers=headers) as response:
            stream = response.content_type.startswith("text/event-stream")
            kind = b"text/event-stream" if stream else b"application/json"
            start = {"type": "http.response.start", "status": response.status}
            await send({**start, "headers": [(b"content-type", kind)]})
            if not stream:
                await send({"type": "http.response.body", "body": await response.read()})
                return
            async for data in response.content.iter_any():
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    port, upstream = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(
        (create_asgi_app if "--asgi" in sys.argv[3:] else create_app)(upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
