#!/usr/bin/env python3
"""Gateway benchmark: chatgate's /v1/chat/completions beside the same upstream called directly
and through LiteLLM's proxy, one worker each, in one run, printed as one table.

    bench/gateway/setup.sh                 # once: nginx + Lua module, wrk, LiteLLM's own venv
    .venv/bin/python bench/gateway/run.py  # about 2 minutes; --rounds 3 for steadier figures

The upstream is nginx returning a fixed completion (upstream.lua). chatgate runs as
`chatgate serve --workers 1 --config ...` with CHATGATE_AUTH_MODE=jwt and every request carries a
signed JWT; LiteLLM runs with one worker and a master key, so both authenticate every request.
A bare FastAPI + aiohttp pass-through (bare_proxy.py) on the same stack is the floor row:
what chatgate costs above it is chatgate's own. "CPU per request" (the server's user + system
CPU seconds over the throughput run, divided by its requests) moves least when other work
shares the machine; latencies move most. Figures are noisy on a shared machine: rerun, use
--rounds, or --quiet to wait for the load average to drop first.

    .venv/bin/python bench/gateway/run.py --tools --no-litellm --rounds 2 --seconds 8

With --tools every target is also measured with a tool-calling request (two function tools
with JSON-schema parameters and a conversation of user, assistant tool call, tool result and
user: load.tools_body), which the upstream answers with a tool call, streamed as OpenAI streams
its deltas. Each target runs both bodies back to back, plain first in odd rounds and tools first
in even ones, and a second table sets chatgate's added latency and CPU per request for the tool
call beside the plain request's (the tools issue's item 6: within 20 %).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import project_venv

project_venv.enter(__file__)
HERE = project_venv.HERE

import load  # noqa: E402
import report  # noqa: E402
import servers  # noqa: E402
import spy  # noqa: E402
from harness import (  # noqa: E402
    bench_token,
    chatgate_source,
    machine_line,
    process_tree_cpu_seconds,
    raise_file_limit,
)

OUT = HERE / "out"
PATH = "/v1/chat/completions"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat everything, every other round in reverse order; medians shown",
    )
    parser.add_argument(
        "--stream-requests",
        type=int,
        default=300,
        help="sequential streamed requests per target for first-byte times",
    )
    parser.add_argument(
        "--stream-gap",
        type=float,
        default=0.02,
        help="seconds the upstream waits between its first and its other tokens",
    )
    parser.add_argument("--connections", type=int, default=16, help="connections for throughput")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the servers under test on one CPU and wrk, nginx and the "
        "stream client on the others (best on an otherwise idle machine)",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each round, wait up to SECONDS for the 1-minute load "
        "average to fall below half the CPU count",
    )
    parser.add_argument(
        "--chatgate",
        metavar="REF_OR_DIR",
        help="serve chatgate as of this git commit (exported with git archive) or from this "
        "directory holding a chatgate package; default: the working tree as it is",
    )
    parser.add_argument(
        "--chatgate-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the chatgate servers (repeatable); other CHATGATE_* "
        "variables of the calling shell are not passed on",
    )
    parser.add_argument(
        "--candidate",
        metavar="REF_OR_DIR",
        help="also measure this chatgate (a git commit, or a directory holding a copy with a "
        "change to try) as an extra row, to compare with the first",
    )
    parser.add_argument(
        "--tracing",
        type=float,
        metavar="RATIO",
        help="chatgate samples this share of traces (1 = every one) and exports their spans to "
        "an OTLP/HTTP sink on loopback that reads and drops them",
    )
    parser.add_argument(
        "--tools",
        action="store_true",
        help="also measure every target with a tool-calling request (plain and streamed) and "
        "print chatgate's added latency and CPU for it against the plain request's",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, sample chatgate with py-spy under the throughput load",
    )
    return parser.parse_args()


def measure(
    target: load.Target,
    args: argparse.Namespace,
    bodies: dict[str, Path],
    threads: int,
    upstream_port: int,
    kind: str = "plain",
) -> dict[str, Any]:
    """One target with one kind of request, "plain" or "tools": wrk posts bodies[kind], the
    stream client the same request streamed (load.body_of)."""
    plain = bodies[kind]
    load.wrk(target, connections=args.connections, threads=threads, seconds=2, body_file=plain)
    latency = load.wrk(target, connections=1, threads=1, seconds=args.seconds, body_file=plain)
    cpu_before = process_tree_cpu_seconds(target.pid) if target.pid else 0.0
    calls_before = load.upstream_requests(upstream_port)
    throughput = load.wrk(
        target, connections=args.connections, threads=threads, seconds=args.seconds, body_file=plain
    )
    # Less one: the status request itself.
    calls = load.upstream_requests(upstream_port) - calls_before - 1
    cpu = (process_tree_cpu_seconds(target.pid) - cpu_before) if target.pid else 0.0
    stream = load.first_bytes(target, requests=args.stream_requests, kind=kind)
    return {
        "p50_ms": latency["p50_us"] / 1000,
        "p99_ms": latency["p99_us"] / 1000,
        "min_ms": latency["min_us"] / 1000,
        "rps": throughput["rps"],
        "wrk_requests": throughput["requests"],
        "cpu_us_per_request": 1e6 * cpu / max(throughput["requests"], 1),
        "errors": latency["errors"] + throughput["errors"],
        "engine_calls_per_request": calls / max(throughput["requests"], 1),
        # wrk does not count the requests still in flight when it stops: up to one a connection.
        "engine_calls_unexplained": max(0, abs(calls - throughput["requests"]) - args.connections),
        **stream,
        "wrk_latency": latency,
        "wrk_throughput": throughput,
    }


def profile(
    target: load.Target,
    args: argparse.Namespace,
    bodies: dict[str, Path],
    threads: int,
    name: str,
    kind: str = "plain",
) -> str:
    assert target.pid is not None
    name = name if kind == "plain" else f"{name}-{kind}"
    folded = OUT / f"{name}-profile.txt"
    sampler = spy.start(target.pid, args.seconds, folded)
    time.sleep(0.5)
    load.wrk(
        target,
        connections=args.connections,
        threads=threads,
        seconds=args.seconds,
        body_file=bodies[kind],
    )
    _, errors = sampler.communicate(timeout=args.seconds + 60)
    if sampler.returncode != 0 or not folded.exists():
        return f"py-spy failed: {errors.decode(errors='replace')[-2000:]}"
    summary = spy.summarise(folded)
    (OUT / f"{name}-profile-summary.txt").write_text(summary + "\n")
    return summary


def main() -> None:
    args = parse_args()
    if missing := servers.missing_tools(litellm=not args.no_litellm):
        sys.exit("missing:\n  " + "\n  ".join(missing))
    for name in [n for n in os.environ if n.startswith("CHATGATE_")]:
        del os.environ[name]  # the benchmark's chatgate is configured here and nowhere else
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every server is stopped
    raise_file_limit()
    with servers.one_run_at_a_time(OUT):
        run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> None:
    bodies = {}
    for kind, body in (
        ("plain", load.request_body(stream=False)),
        ("stream", load.request_body(stream=True)),
        ("tools", load.tools_body(stream=False)),
        ("tools-stream", load.tools_body(stream=True)),
    ):
        bodies[kind] = OUT / f"body-{kind}.json"
        bodies[kind].write_text(json.dumps(body))
    kinds = ("plain", "tools") if args.tools else ("plain",)
    gateway_cpus, load_cpus = servers.cpu_split(args.pin)
    threads = max(1, min(4, len(load_cpus or os.sched_getaffinity(0))))
    started = machine_line()
    jwt_secret = secrets.token_urlsafe(48)
    token = bench_token(jwt_secret)
    master_key = "sk-bench-" + secrets.token_hex(16)

    with contextlib.ExitStack() as stack:
        if load_cpus:
            os.sched_setaffinity(0, load_cpus)  # this process, wrk and nginx
        print(
            "starting nginx, chatgate" + ("" if args.no_litellm else " and LiteLLM"),
            file=sys.stderr,
        )
        upstream = stack.enter_context(servers.serve_upstream(OUT, stream_gap=args.stream_gap))
        source, source_label = chatgate_source(args.chatgate, OUT)
        gateway_env = dict(item.split("=", 1) for item in args.chatgate_env)
        exports: dict[str, int] = {}
        traced_env = dict(gateway_env)
        if args.tracing is not None:
            endpoint, exports = stack.enter_context(servers.otlp_sink())
            traced_env.update(
                CHATGATE_OTLP_ENDPOINT=endpoint, CHATGATE_TRACE_SAMPLE_RATIO=f"{args.tracing:g}"
            )
        nginx_pid = int((OUT / "nginx" / "nginx.pid").read_text())
        direct = f"http://127.0.0.1:{upstream}{PATH}"
        targets = [load.Target("upstream direct (nginx)", direct, None, nginx_pid)]

        def serve(label: str, server: Any, authorization: str | None) -> load.Target:
            port, process = stack.enter_context(server)
            url = f"http://127.0.0.1:{port}{PATH}"
            return load.Target(label, url, authorization, process.pid)

        def gateway(label: str, name: str, code: Path | None, env: dict[str, str]) -> load.Target:
            server = servers.serve_gateway(
                OUT, upstream_port=upstream, jwt_secret=jwt_secret, name=name, source=code,
                extra_env=env,
            )  # fmt: skip
            return serve(label, server, f"Bearer {token}")

        profiled: dict[str, load.Target] = {}
        with servers.pinned(gateway_cpus):
            for floor, asgi in (
                ("uvicorn + aiohttp, no framework (floor)", True),
                ("bare FastAPI + aiohttp proxy (floor)", False),
            ):
                proxy = servers.serve_bare_proxy(OUT, upstream_port=upstream, asgi=asgi)
                targets.append(serve(floor, proxy, None))
            profiled["chatgate"] = gateway("chatgate", "chatgate", source, gateway_env)
            if args.candidate:
                code, code_label = chatgate_source(args.candidate, OUT)
                profiled["candidate"] = gateway(
                    f"chatgate candidate ({code_label})", "candidate", code, gateway_env
                )
            if args.tracing is not None:
                profiled["traced"] = gateway(
                    f"chatgate, {args.tracing:.0%} of traces sampled", "traced", source, traced_env
                )
            targets += profiled.values()
            if not args.no_litellm:
                litellm = servers.serve_litellm(OUT, upstream_port=upstream, master_key=master_key)
                name = f"LiteLLM {servers.versions()['litellm']}"
                targets.append(serve(name, litellm, f"Bearer {master_key}"))
        for target in targets:
            asyncio.run(load.check(target, tools=args.tools))
        rounds: dict[str, dict[str, list[dict[str, Any]]]] = {
            kind: {t.name: [] for t in targets} for kind in kinds
        }
        for number in range(args.rounds):
            servers.wait_for_quiet(args.quiet)
            # The row measured later in a round fared about 10 % worse in A/B runs of the same
            # code (11:40 UTC): every other round goes the other way, so rows share the penalty;
            # so do the plain and the tool-calling request of each target.
            for target in targets if number % 2 == 0 else targets[::-1]:
                for kind in kinds if number % 2 == 0 else kinds[::-1]:
                    print(
                        f"round {number + 1}/{args.rounds}: {target.name}, {kind}",
                        file=sys.stderr,
                    )
                    rounds[kind][target.name].append(
                        measure(target, args, bodies, threads, upstream, kind)
                    )
        profiles: dict[str, str] = {}
        if args.profile:
            for name, target in profiled.items():
                for kind in kinds:
                    print(
                        f"profiling {target.name} ({kind}) under load with py-spy", file=sys.stderr
                    )
                    label = target.name if kind == "plain" else f"{target.name}, tool call"
                    profiles[label] = profile(target, args, bodies, threads, name, kind)

    every = {
        kind: {name: report.median_of(runs) for name, runs in by_target.items()}
        for kind, by_target in rounds.items()
    }
    results = every["plain"]
    summary = report.table(results, args.connections)
    if args.tools:
        summary += "\n\nThe tool-calling request (load.tools_body), same run:\n\n"
        summary += report.table(every["tools"], args.connections)
        summary += "\n\n" + report.tools_table(every["plain"], every["tools"])
    info = servers.versions(source_label)
    pinning = (
        f"servers under test on CPU {sorted(gateway_cpus)}, wrk/nginx/client on CPUs "
        f"{sorted(load_cpus)}"
        if gateway_cpus and load_cpus
        else "no CPU pinning"
    )
    context = [
        f"run: {started}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        f"method: wrk closed loop, {args.seconds:g} s per run after a 2 s warm-up; "
        f"{args.stream_requests} sequential streamed requests on one connection; "
        f"median of {args.rounds} round(s); {pinning}; upstream stream gap {args.stream_gap} s",
    ]
    if args.tracing is not None:
        context.append(
            f"tracing: {args.tracing:.0%} of traces sampled; the sink received "
            f"{exports['requests']:,} OTLP exports, {exports['bytes'] / 1e6:.1f} MB of spans"
        )
    print()
    print(summary)
    print()
    verdicts = report.verdicts(results)
    if args.tools:
        verdicts += report.tools_verdicts(every["plain"], every["tools"])
    print("\n".join(verdicts))
    print("\n".join(context))
    for name, text in profiles.items():
        print(f"\n{name}: profile under load (py-spy; all of it in bench/gateway/out/):")
        print(text.split("\n\ninclusive")[0])
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "context": context,
                "results": results,
                "rounds": rounds["plain"],
                **(
                    {"tool_results": every["tools"], "tool_rounds": rounds["tools"]}
                    if args.tools
                    else {}
                ),
            },
            indent=2,
            default=str,
        )
    )
    (OUT / "table.md").write_text(summary + "\n\n" + "\n".join(verdicts + context) + "\n")


if __name__ == "__main__":
    main()
