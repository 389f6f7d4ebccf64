#!/usr/bin/env python3
"""The pieces of chatgate's /v1/chat/completions hot path, timed one by one, in process.

    .venv/bin/python bench/gateway/hotpath.py [--chatgate REF_OR_DIR] [--tools]

Each figure is CPU microseconds per call (process CPU time, all threads, so work handed to a
thread still counts), the best batch of several: the minimum is what the code costs, the rest
is other work on a shared machine, so these figures hold still where run.py's latencies do not.
Each line sets what chatgate does today beside the cheaper way a change would do it.

With --tools, the pieces that a tool-calling request (run.py's, load.tools_body: two function
tools with JSON-schema parameters, a conversation of four turns) makes dearer are timed with it
and with the plain request: the body's validation, its translation, the engine call, and the
whole request, plain and streamed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import project_venv

project_venv.enter(__file__)
HERE = project_venv.HERE

import servers  # noqa: E402
from cputime import BATCH, REPEATS, acpu_per_call, cpu_per_call, line, quiet_stderr, versus  # noqa: E402
from harness import JWT_AUDIENCE, bench_token, chatgate_source  # noqa: E402
from hotpath_tools import bodies, tool_pieces  # noqa: E402

SECRET = "bench-secret-" + "x" * 40


def thread_pool(loop: asyncio.AbstractEventLoop) -> None:
    from starlette.concurrency import run_in_threadpool

    def dependency() -> object:
        return loop

    async def as_async() -> object:
        return loop

    today = acpu_per_call(loop, lambda: run_in_threadpool(dependency))
    line(
        "sync `def` dependency (thread-pool hop)",
        today,
        acpu_per_call(loop, as_async),
        "as `async def` (one per sync dependency: _catalog, _providers)",
    )


def jwt_check(loop: asyncio.AbstractEventLoop) -> None:
    import inspect

    from chatgate.auth.service import Authenticator
    from chatgate.core.config import Settings

    settings = Settings(auth_mode="jwt", jwt_secret=SECRET, jwt_audience=JWT_AUDIENCE)
    extra = [None] * (len(inspect.signature(Authenticator).parameters) - 1)
    authenticator = Authenticator(settings, *extra)
    token = bench_token(SECRET, ttl=3600)
    header = f"Bearer {token}"
    cache: dict[str, tuple[float, object]] = {}

    async def cached() -> object:
        hit = cache.get(token)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        user = await authenticator.authenticate(header)
        cache[token] = (time.time() + 60, user)
        return user

    today = acpu_per_call(loop, lambda: authenticator.authenticate(header))
    line(
        "JWT check (Authenticator.authenticate)",
        today,
        acpu_per_call(loop, cached),
        "a verified-token cache hit (bounded LRU, until exp)",
    )


def body_parsing() -> None:
    from chatgate.openai_compat.schemas import ChatCompletionRequest

    body = json.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 64,
        }
    ).encode()

    def fastapi_way(n: int) -> None:  # what FastAPI does for a Pydantic body parameter
        for _ in range(n):
            ChatCompletionRequest.model_validate(json.loads(body))

    def one_pass(n: int) -> None:
        for _ in range(n):
            ChatCompletionRequest.model_validate_json(body)

    line(
        "body: json.loads + model_validate",
        cpu_per_call(fastapi_way),
        cpu_per_call(one_pass),
        "model_validate_json(await request.body())",
    )


def access_log() -> None:
    from chatgate.core.logging import configure_logging

    configure_logging("INFO")
    log = logging.getLogger("chatgate.access")
    extra = {
        "route": "/v1/chat/completions",
        "method": "POST",
        "status": 200,
        "duration_ms": 1.23,
        "engine_ms": 0.5,
        "cache_hit": None,
        "user": "bench-user",
    }

    def emit(n: int) -> None:
        for _ in range(n):
            log.info("request", extra=extra)
        time.sleep(0.05)  # let the writer thread drain, so its CPU is counted too
        while any(not getattr(q, "empty", lambda: True)() for q in _queues()):
            time.sleep(0.01)

    with quiet_stderr():
        today = cpu_per_call(emit)
        log.setLevel(logging.WARNING)
        off = cpu_per_call(emit)
        log.setLevel(logging.NOTSET)
    line("access log line (record + writer thread)", today, off, "not logged (level WARNING)")


def _queues() -> list[Any]:
    from chatgate.core import logging as cg_logging

    writer = getattr(cg_logging, "_writer", None)
    return [writer.records] if writer is not None else []


def prometheus() -> None:
    try:
        from chatgate.observability import metrics
    except ImportError:
        return

    def observe(n: int) -> None:
        for _ in range(n):
            metrics.http_in_flight.inc()
            metrics.http_in_flight.dec()
            metrics.http_requests.labels("/v1/chat/completions", "POST", "200").inc()
            metrics.http_duration.labels("/v1/chat/completions", "POST").observe(0.001)

    line("Prometheus metrics of one request", cpu_per_call(observe))


def upstream(loop: asyncio.AbstractEventLoop, port: int) -> None:
    import aiohttp

    from chatgate.core.config import ProviderConfig
    from chatgate.providers.base import ChatTurn, CompletionRequest
    from chatgate.providers.openai import OpenAIProvider

    base = f"http://127.0.0.1:{port}/v1"
    provider = OpenAIProvider(ProviderConfig(id="upstream", type="openai", base_url=base))
    loop.run_until_complete(provider.start())
    request = CompletionRequest(
        model="gpt-4o-mini",
        messages=[ChatTurn("user", "Hi")],
        max_tokens=64,
        stream=False,
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})

    async def through_provider() -> None:
        async for _ in provider.stream(request):
            pass

    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    session = loop.run_until_complete(make_session())

    async def bare() -> None:
        async with session.post(
            f"{base}/chat/completions", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            await response.read()

    today = acpu_per_call(loop, through_provider)
    line(
        "upstream call (OpenAIProvider.stream)",
        today,
        acpu_per_call(loop, bare),
        "bare aiohttp post + read, DummyCookieJar",
    )
    loop.run_until_complete(provider.close())
    loop.run_until_complete(session.close())


def _asgi_request(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> Awaitable[None]:
    """One POST /v1/chat/completions straight into the ASGI app: no socket on the client side."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": {},
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *headers],
    }  # fmt: skip
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect; cancelled when the response is done
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    async def call() -> None:
        await app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"the app answered {status}")

    return call()


def whole_request(
    loop: asyncio.AbstractEventLoop, port: int, out: Path, *, tools: bool = False
) -> None:
    import bare_proxy

    from chatgate.core.config import AssistantConfig, ProviderConfig, Settings
    from chatgate.core.migrate import upgrade_database
    from chatgate.main import create_app

    for leftover in out.glob("hotpath.db*"):
        leftover.unlink()
    url = f"sqlite+aiosqlite:///{out / 'hotpath.db'}"
    upgrade_database(url)
    from chatgate.core.policies import GuardPolicy, RateLimitSettings

    # Limits high enough never to refuse one benchmark user; the limiter still runs.
    limits = RateLimitSettings(
        requests_per_minute=10**9, ip_requests_per_minute=10**9, tokens_per_minute=10**9
    )
    settings = Settings(
        auth_mode="jwt", jwt_secret=SECRET, jwt_audience=JWT_AUDIENCE, database_url=url,
        log_level="INFO",
        rate_limits=limits,
        providers=[ProviderConfig(id="upstream", type="openai",
                                  base_url=f"http://127.0.0.1:{port}/v1")],
        assistants=[AssistantConfig(id="bench", name="Benchmark", provider="upstream",
                                    model="gpt-4o-mini", max_context_tokens=4096,
                                    max_answer_tokens=256,
                                    system_prompt="You are a helpful assistant.",
                                    # as chatgate.yaml: the same work for any version compared
                                    guards=GuardPolicy(pii="mask", injection="flag"))],
    )  # fmt: skip
    body = json.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64}
    ).encode()
    token = bench_token(SECRET, ttl=3600)
    auth = [(b"authorization", f"Bearer {token}".encode())]
    gate = create_app(settings)
    floor = bare_proxy.create_app(f"http://127.0.0.1:{port}/v1/chat/completions")

    async def measure(
        app: Any, headers: list[tuple[bytes, bytes]], bodies: tuple[bytes, ...] = (body,)
    ) -> list[float]:
        """CPU per request for each body; the bodies' batches take turns, so each sees the
        same machine."""
        async with app.router.lifespan_context(app):
            for _ in range(200):  # warm-up: connections, caches
                for each in bodies:
                    await _asgi_request(app, each, headers)
            best = [float("inf")] * len(bodies)
            for _ in range(REPEATS):
                for i, each in enumerate(bodies):
                    start = time.process_time()
                    for _ in range(BATCH // 4):
                        await _asgi_request(app, each, headers)
                    best[i] = min(best[i], time.process_time() - start)
        return [1e6 * b / (BATCH // 4) for b in best]

    with quiet_stderr():
        [today] = loop.run_until_complete(measure(gate, auth))
        [bare] = loop.run_until_complete(measure(floor, []))
    line(
        "whole request in the ASGI app (no uvicorn)",
        today,
        bare,
        "bare FastAPI + aiohttp proxy (bare_proxy.py)",
    )
    if not tools:
        return
    for stream in (False, True):
        with quiet_stderr():
            plain, tool = loop.run_until_complete(measure(gate, auth, bodies(stream)))
        versus("whole request in the ASGI app" + (", streamed" if stream else ""), plain, tool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chatgate",
        metavar="REF_OR_DIR",
        help="time this chatgate (git commit or directory); default: working tree",
    )
    parser.add_argument(
        "--tools",
        action="store_true",
        help="also time the pieces a tool-calling request makes dearer, beside the plain one",
    )
    args = parser.parse_args()
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    source, label = chatgate_source(args.chatgate, out)
    if source is not None and os.environ.get("PYTHONPATH") != str(source):
        os.environ["PYTHONPATH"] = str(source)
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])
    import uvloop

    print(f"chatgate hot path, CPU per call ({label}; best of {REPEATS} batches of {BATCH}):")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    thread_pool(loop)
    jwt_check(loop)
    body_parsing()
    access_log()
    prometheus()
    with servers.one_run_at_a_time(out), servers.serve_upstream(out, stream_gap=0.0) as port:
        upstream(loop, port)
        whole_request(loop, port, out, tools=args.tools)
        if args.tools:
            tool_pieces(loop, port)
    loop.close()


if __name__ == "__main__":
    main()
