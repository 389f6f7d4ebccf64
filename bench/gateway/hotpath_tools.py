"""hotpath.py --tools: the pieces of the request path that a tool-calling request (run.py's,
load.tools_body) makes dearer, timed with it and with the plain request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import load
from cputime import acpu_per_call, cpu_per_call, versus


def bodies(stream: bool = False) -> tuple[bytes, bytes]:
    """The plain and the tool-calling request of run.py, as sent."""
    return (
        json.dumps(load.request_body(stream=stream, number="1")).encode(),
        json.dumps(load.tools_body(stream=stream, number="1")).encode(),
    )


def tool_pieces(loop: asyncio.AbstractEventLoop, port: int) -> None:
    """The pieces of the request path that see the tools and the longer conversation."""
    import dataclasses

    from chatgate.core.config import ProviderConfig
    from chatgate.openai_compat.schemas import ChatCompletionRequest
    from chatgate.openai_compat.translate import engine_request
    from chatgate.providers.base import ChatTurn
    from chatgate.providers.openai import OpenAIProvider

    print("tool-calling request against the plain one, piece by piece:")
    plain, tools = bodies()

    def validate(body: bytes) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                ChatCompletionRequest.model_validate_json(body)

        return run

    versus(
        "body: model_validate_json",
        cpu_per_call(validate(plain)),
        cpu_per_call(validate(tools)),
    )
    parsed = [ChatCompletionRequest.model_validate_json(b) for b in (plain, tools)]

    def translate(body: ChatCompletionRequest) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                engine_request(body)

        return run

    versus(
        "translate.engine_request",
        cpu_per_call(translate(parsed[0])),
        cpu_per_call(translate(parsed[1])),
    )
    base = f"http://127.0.0.1:{port}/v1"
    provider = OpenAIProvider(ProviderConfig(id="upstream", type="openai", base_url=base))
    loop.run_until_complete(provider.start())
    system = ChatTurn("system", "You are a helpful assistant.")
    for stream in (False, True):
        requests = [
            dataclasses.replace(
                engine_request(p),
                model="gpt-4o-mini",
                messages=[system, *engine_request(p).messages],
                max_tokens=64,
                stream=stream,
                trace_id="0af7651916cd43dd8448eb211c80319c",
            )
            for p in parsed
        ]

        def through_provider(request: Any) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                async for _ in provider.stream(request):
                    pass

            return run

        versus(
            "upstream call (OpenAIProvider.stream)" + (", streamed" if stream else ""),
            acpu_per_call(loop, through_provider(requests[0])),
            acpu_per_call(loop, through_provider(requests[1])),
        )
    loop.run_until_complete(provider.close())
