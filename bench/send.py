"""The send path, A/B: `POST /v1/sessions/{id}/messages` (blocking) answered by an upstream that
returns a fixed completion at once, so what is timed is chatgate's own work per turn: guards,
context from history, storing the question and the answer (sealed, where the version seals).

    .venv/bin/python bench/send.py --chatgate cdb9d9a --candidate HEAD [--rounds 3]

Each round serves each version in turn (the order alternating between rounds) on its own new
PostgreSQL database, migrated by that version, and sends `--messages` turns one after another
over one keep-alive connection, in sessions of 20 turns; it prints the median turn latency and
the server's CPU time per turn. The upstream (aiohttp, in this process) is the same for both.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

from aiohttp import web
from harness import (
    CHATGATE,
    OUT,
    ScratchPostgres,
    chatgate_source,
    free_port,
    machine_line,
    process_tree_cpu_seconds,
    serve_chatgate,
)

HERE = Path(__file__).resolve().parent
KEYS = "bench1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
ANSWER = "Your order ships within two working days; you will get the tracking number by mail."
QUESTION = "When will my order ship, and how do I follow it? I ordered a kettle on Monday."
TURNS_PER_SESSION = 20


async def completion(request: web.Request) -> web.StreamResponse:
    """OpenAI's chat completion, streamed (as chatgate asks for it) or whole."""
    if not (await request.json()).get("stream"):
        body = {
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": ANSWER}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 18, "total_tokens": 58},
        }  # fmt: skip
        return web.json_response(body)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": "bench"}  # fmt: skip
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ANSWER}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 40, "completion_tokens": 18, "total_tokens": 58}},
    ]  # fmt: skip
    for chunk in chunks:
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def serve_upstream() -> int:
    """A fixed OpenAI completion on a free port, in a thread of this process."""
    import asyncio

    port = free_port()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completion)
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return port


def config_file(upstream_port: int) -> Path:
    text = (HERE / "gateway" / "chatgate.yaml").read_text().format(upstream_port=upstream_port)
    path = OUT / "send-config.yaml"
    path.write_text(text)
    return path


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # The console script: `python -m` would put the working directory's chatgate first.
    command = [str(CHATGATE), *args]
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)


def turns(port: int, messages: int, pid: int) -> tuple[float, float]:
    """(median turn in ms, server CPU ms per turn) over `messages` turns."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    times: list[float] = []
    session = ""
    cpu_before = process_tree_cpu_seconds(pid)
    for n in range(messages):
        if n % TURNS_PER_SESSION == 0:
            conn.request("POST", "/v1/sessions", json.dumps({"assistant_id": "bench"}), headers)
            created = conn.getresponse()
            session = json.loads(created.read())["id"]
        start = time.perf_counter()
        body = json.dumps({"content": f"{QUESTION} ({n})"})
        conn.request("POST", f"/v1/sessions/{session}/messages", body, headers)
        answer = conn.getresponse()
        payload = answer.read()
        times.append((time.perf_counter() - start) * 1000)
        if answer.status != 200 or ANSWER not in json.loads(payload)["message"]["content"]:
            raise SystemExit(f"turn {n}: {answer.status} {payload[:300]!r}")
    cpu = process_tree_cpu_seconds(pid) - cpu_before
    conn.close()
    return statistics.median(times), cpu * 1000 / messages


def measure(ref: str, upstream_port: int, messages: int) -> tuple[float, float]:
    source, label = chatgate_source(ref, OUT)
    env = {"CHATGATE_AUTH_MODE": "none", "CHATGATE_LOG_LEVEL": "WARNING",
           "CHATGATE_ENCRYPTION_KEYS": KEYS, "BENCH_UPSTREAM_KEY": "sk-bench"}  # fmt: skip
    if source is not None:
        env["PYTHONPATH"] = str(source)
    db = ScratchPostgres("chatgate_bench_send")
    db.create()
    try:
        env["CHATGATE_DATABASE_URL"] = db.url
        migrated = cli(env, "migrate")
        if migrated.returncode:
            raise SystemExit(f"{label}: migrate failed: {migrated.stderr[-500:]}")
        config = config_file(upstream_port)
        with serve_chatgate(env=env, config=config, log_name="send") as (port, process):
            turns(port, 20, process.pid)  # warm-up: connections, caches, first imports
            return turns(port, messages, process.pid)
    finally:
        db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chatgate", required=True, help="the baseline commit")
    parser.add_argument("--candidate", default="HEAD", help="the commit compared with it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=400, help="turns timed per version")
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    upstream_port = serve_upstream()
    results: dict[str, list[tuple[float, float]]] = {args.chatgate: [], args.candidate: []}
    for round_ in range(args.rounds):
        order = [args.chatgate, args.candidate]
        for ref in order if round_ % 2 == 0 else order[::-1]:
            median, cpu = measure(ref, upstream_port, args.messages)
            results[ref].append((median, cpu))
            print(f"round {round_ + 1} {ref}: turn median {median:.2f} ms, CPU {cpu:.2f} ms")
    base_ms = statistics.median(m for m, _ in results[args.chatgate])
    base_cpu = statistics.median(c for _, c in results[args.chatgate])
    for ref, rows in results.items():
        median = statistics.median(m for m, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(
            f"{ref}: turn median {median:.2f} ms ({median / base_ms:.3f}x), "
            f"CPU per turn {cpu:.2f} ms ({cpu / base_cpu:.3f}x)"
        )


if __name__ == "__main__":
    main()
