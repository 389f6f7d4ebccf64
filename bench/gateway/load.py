"""The loads: wrk for latency and throughput, a small aiohttp client for streaming first bytes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from harness import percentile

HERE = Path(__file__).resolve().parent
# "{n}" becomes a number of the request's own, so no two questions are alike.
QUESTION = "What is the capital of France? Answer in one sentence. (question {n})"
# A non-empty content delta: the first token a user sees. A role-only chunk does not count.
CONTENT = re.compile(rb'"content"\s*:\s*"[^"]')


def request_body(*, stream: bool, number: str = "{n}") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "bench",
        "messages": [{"role": "user", "content": QUESTION.replace("{n}", number)}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
    return body


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # the full /v1/chat/completions URL
    authorization: str | None
    pid: int | None  # the server process, for CPU accounting and profiling; None for nginx

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        return headers


def wrk(
    target: Target, *, connections: int, threads: int, seconds: float, body_file: Path
) -> dict[str, Any]:
    """One closed-loop wrk run: each connection sends its next request when the last answered."""
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "post.lua"),
        target.url,
    ]
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_AUTH": target.authorization or ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            break
    else:
        raise RuntimeError(f"wrk gave no result for {target.name}:\n{done.stdout}{done.stderr}")
    errors = sum(v for k, v in result.items() if k.startswith("errors_"))
    result["errors"] = errors
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def upstream_requests(port: int) -> int:
    """Requests nginx has served (its stub_status), this one included."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/nginx_status", timeout=5) as answer:
        return int(answer.read().decode().splitlines()[2].split()[2])


async def check(target: Target) -> None:
    """One plain and one streamed request, answered in full, before any load."""
    async with aiohttp.ClientSession(headers=target.headers()) as http:
        async with http.post(
            target.url, json=request_body(stream=False, number="check")
        ) as response:
            text = await response.text()
            if response.status != 200:
                raise RuntimeError(f"{target.name} answered {response.status}: {text[:500]}")
            content = json.loads(text)["choices"][0]["message"]["content"]
            if not content.startswith("Hello!"):
                raise RuntimeError(f"{target.name} answered an unexpected completion: {text[:500]}")
        async with http.post(
            target.url, json=request_body(stream=True, number="check")
        ) as response:
            raw = await response.read()
            if response.status != 200 or b"data: [DONE]" not in raw or not CONTENT.search(raw):
                raise RuntimeError(f"{target.name} streamed {response.status}: {raw[:500]!r}")


async def _first_bytes(target: Target, *, requests: int, warmup: int) -> dict[str, float]:
    template = json.dumps(request_body(stream=True))
    first_byte: list[float] = []
    first_token: list[float] = []
    total: list[float] = []
    connector = aiohttp.TCPConnector(limit=1)  # one keep-alive connection, like wrk -c1
    async with aiohttp.ClientSession(connector=connector, headers=target.headers()) as http:
        for i in range(warmup + requests):
            start = time.perf_counter()
            byte_at = token_at = None
            seen = b""
            body = template.replace("{n}", f"s{i}").encode()
            async with http.post(target.url, data=body) as response:
                if response.status != 200:
                    raise RuntimeError(f"{target.name} answered {response.status} to a stream")
                async for data in response.content.iter_any():
                    now = time.perf_counter()
                    byte_at = byte_at or now
                    if token_at is None:
                        seen += data
                        if CONTENT.search(seen):
                            token_at = now
            end = time.perf_counter()
            if byte_at is None or token_at is None:
                raise RuntimeError(f"{target.name} streamed no content")
            if i >= warmup:
                first_byte.append(byte_at - start)
                first_token.append(token_at - start)
                total.append(end - start)
    ms = 1000.0
    return {
        "first_byte_p50_ms": percentile(first_byte, 50) * ms,
        "first_token_p50_ms": percentile(first_token, 50) * ms,
        "first_token_p99_ms": percentile(first_token, 99) * ms,
        "first_token_min_ms": min(first_token) * ms,
        "stream_total_p50_ms": percentile(total, 50) * ms,
        "stream_requests": float(requests),
    }


def first_bytes(target: Target, *, requests: int, warmup: int = 20) -> dict[str, float]:
    """Sequential streamed requests on one connection: time to first byte and to first token."""
    return asyncio.run(_first_bytes(target, requests=requests, warmup=warmup))
