#!/usr/bin/env python3
"""What an idle pause before each request costs on this machine, direct and through proxies.

    .venv/bin/python bench/gateway/idle.py [--requests 300] [--pause 0.02]

The streaming first-byte figure of run.py is taken on requests sent one after another, each
after a 20 ms stream: every process in the path has gone idle when the next request comes, and
waking it is paid once per hop. This script times plain (non-streamed) requests, first body
byte, one after another and then with the same pause before each, to the upstream directly,
through the bare FastAPI + aiohttp proxy and through chatgate, so that cost is seen apart from
streaming and from chatgate's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time

import project_venv

project_venv.enter(__file__)
HERE = project_venv.HERE

import aiohttp  # noqa: E402
import load  # noqa: E402
import servers  # noqa: E402
from harness import bench_token  # noqa: E402

OUT = HERE / "out"


async def first_byte_ms(target: load.Target, *, requests: int, pause: float) -> float:
    body = json.dumps(load.request_body(stream=False)).replace("{n}", "idle").encode()
    times: list[float] = []
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, headers=target.headers()) as http:
        for i in range(requests + 20):
            start = time.perf_counter()
            async with http.post(target.url, data=body) as response:
                async for _ in response.content.iter_any():
                    first = time.perf_counter()
                    break
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{target.name} answered {response.status}")
            if i >= 20:
                times.append(first - start)
            if pause:
                await asyncio.sleep(pause)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds idle before each")
    args = parser.parse_args()
    secret = secrets.token_urlsafe(48)
    token = bench_token(secret, ttl=3600)
    path = "/v1/chat/completions"
    with (
        servers.one_run_at_a_time(OUT),
        servers.serve_upstream(OUT, stream_gap=0.02) as upstream,
        servers.serve_bare_proxy(OUT, upstream_port=upstream) as (bare, _),
        servers.serve_gateway(OUT, upstream_port=upstream, jwt_secret=secret) as (gate, _),
    ):
        targets = [
            load.Target(
                "upstream direct (nginx)", f"http://127.0.0.1:{upstream}{path}", None, None
            ),
            load.Target(
                "bare FastAPI + aiohttp proxy", f"http://127.0.0.1:{bare}{path}", None, None
            ),
            load.Target("chatgate", f"http://127.0.0.1:{gate}{path}", f"Bearer {token}", None),
        ]
        print(f"first body byte, median of {args.requests} plain requests on one connection")
        print(f"{'target':<30} {'back to back':>13} {f'after {args.pause * 1000:g} ms idle':>18}")
        for target in targets:
            busy = asyncio.run(first_byte_ms(target, requests=args.requests, pause=0))
            idle = asyncio.run(first_byte_ms(target, requests=args.requests, pause=args.pause))
            print(f"{target.name:<30} {busy:10.2f} ms {idle:15.2f} ms", flush=True)


if __name__ == "__main__":
    main()
