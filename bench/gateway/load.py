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


# What an agent sends: two function tools with JSON-schema parameters, and a conversation in
# which the model already called one, got its result, and is asked a follow-up.
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather at a place.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City and country"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Flights between two airports on a day.",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string", "description": "IATA code, e.g. CDG"},
                    "destination": {"type": "string", "description": "IATA code"},
                    "date": {"type": "string", "format": "date"},
                    "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
                },
                "required": ["origin", "destination", "date"],
                "additionalProperties": False,
            },
        },
    },
]
TOOL_CALL_ID = "call_bench00000000000000000000"  # upstream.lua's
TOOL_ARGUMENTS = '{"location":"Paris, France","unit":"celsius"}'  # what upstream.lua calls with
# The first token of a streamed tool call: the delta that names the function.
TOOL_TOKEN = re.compile(rb'"tool_calls"\s*:\s*\[\s*\{[^]]*"name"\s*:\s*"[^"]')


def tools_body(*, stream: bool, number: str = "{n}") -> dict[str, Any]:
    """A tool-calling request as agents send it: user -> assistant tool_calls -> tool result ->
    user; the upstream answers it with another call (upstream.lua)."""
    body: dict[str, Any] = {
        "model": "bench",
        "messages": [
            {"role": "user", "content": "What is the weather in Lyon today?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_lyon0000000000000000000000",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location":"Lyon, France","unit":"celsius"}',
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_lyon0000000000000000000000",
                "content": '{"temperature":14,"condition":"cloudy","wind_kmh":12}',
            },
            {
                "role": "user",
                "content": f"And in Paris? Use celsius. (question {number})",
            },
        ],
        "tools": TOOLS,
        "tool_choice": "auto",
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
    return body


def body_of(kind: str, *, stream: bool, number: str = "{n}") -> dict[str, Any]:
    """The request of a kind of row: "plain" (one question) or "tools" (a tool call)."""
    return (tools_body if kind == "tools" else request_body)(stream=stream, number=number)


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


async def check(target: Target, *, tools: bool = False) -> None:
    """One plain and one streamed request, answered in full, before any load; with `tools`,
    also a tool-calling request both ways, its call reassembled from the stream as OpenAI's
    SDK does."""
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
        if tools:
            await _check_tools(target, http)


def _expected_call(calls: Any, finish: Any, target: Target, raw: Any) -> None:
    want = [
        {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS},
        }
    ]
    if calls != want or finish != "tool_calls":
        raise RuntimeError(
            f"{target.name} did not pass the tool call on (the engine or chatgate dropped "
            f"`tools`?): calls {calls!r}, finish_reason {finish!r}; answer: {str(raw)[:800]}"
        )


async def _check_tools(target: Target, http: aiohttp.ClientSession) -> None:
    async with http.post(target.url, json=tools_body(stream=False, number="check")) as response:
        text = await response.text()
        if response.status != 200:
            raise RuntimeError(f"{target.name} answered {response.status}: {text[:800]}")
        choice = json.loads(text)["choices"][0]
        _expected_call(choice["message"].get("tool_calls"), choice["finish_reason"], target, text)
    async with http.post(target.url, json=tools_body(stream=True, number="check")) as response:
        raw = await response.read()
        if response.status != 200 or not raw.rstrip().endswith(b"data: [DONE]"):
            raise RuntimeError(f"{target.name} streamed {response.status}: {raw[:800]!r}")
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for line in raw.decode().splitlines():
        if not line.startswith("data: {"):
            continue
        for choice in json.loads(line.removeprefix("data: ")).get("choices") or ():
            finish = choice.get("finish_reason") or finish
            for item in (choice.get("delta") or {}).get("tool_calls") or ():
                call = calls.setdefault(
                    item["index"], {"id": None, "type": None, "function": {"name": None}}
                )
                call["id"] = item.get("id") or call["id"]
                call["type"] = item.get("type") or call["type"]
                function = item.get("function") or {}
                call["function"]["name"] = function.get("name") or call["function"]["name"]
                call["function"]["arguments"] = call["function"].get("arguments", "") + (
                    function.get("arguments") or ""
                )
    _expected_call([calls[i] for i in sorted(calls)], finish, target, raw)


async def _first_bytes(
    target: Target, *, requests: int, warmup: int, kind: str
) -> dict[str, float]:
    template = json.dumps(body_of(kind, stream=True))
    token = TOOL_TOKEN if kind == "tools" else CONTENT
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
                        if token.search(seen):
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


def first_bytes(
    target: Target, *, requests: int, warmup: int = 20, kind: str = "plain"
) -> dict[str, float]:
    """Sequential streamed requests on one connection: time to first byte, to first token (a
    content delta, or for "tools" the delta naming the function) and to the stream's end."""
    return asyncio.run(_first_bytes(target, requests=requests, warmup=warmup, kind=kind))
