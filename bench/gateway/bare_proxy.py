"""The floor: the least a FastAPI + aiohttp gateway can do, on the same stack as chatgate.

No auth, no validation, no mapping: the body is passed to the upstream as it came and the
answer back as it came, streamed or not. Whatever chatgate costs above this row is chatgate's.

    .venv/bin/python bench/gateway/bare_proxy.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse


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


if __name__ == "__main__":
    port, upstream = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(
        create_app(upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
