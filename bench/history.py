"""History read benchmark: does a 10,000-message session open as fast as a 10-message one, and
does its newest page hold 1,000 users reading it about once a second?

    .venv/bin/python bench/history.py [--workers 2] [--requests 1000] [--duration 15s]
        [--connections 1000[,N...]] [--load plain,conditional] [--skip-load] [--keep-db]

Creates a scratch PostgreSQL database (chatgate_bench), migrates it, seeds one user's sessions
of 10 and 10,000 messages (sealed at rest), serves it with `chatgate serve` (auth none,
loopback) and measures:
  (a) sequential GET /v1/history/{id}?limit=50 over one keep-alive connection, per session;
  (b) pages deep in the long session (`before` at 25 %, 50 %, 90 % of the way back);
  (c) wrk on the long session's newest page: each of 1,000 keep-alive connections reads it,
      waits 0.5-1.5 s at random and reads again (bench/history.lua), about 1,000 req/s offered
      and spread in time; `plain` reads the whole page each time, `conditional` sends back the
      ETag last got (If-None-Match) as a browser or a polling client does.
Targets: (a) long within 1.2x of short; (c) p99 < 50 ms and no errors, at 1,000 connections.
Each page is checked (the expected ids, has_more/next_before, every message equal to
MessageOut's JSON), the server's CPU time per request is counted, and the load runs report the
cores used by chatgate, wrk, PostgreSQL and the rest of the (shared) machine. Two workers by
default: one uvicorn worker is one Python thread, so two let chatgate use both cores.
The database is dropped afterwards (--keep-db keeps it). wrk is not installed by this script:
`apt-get install -y wrk` (bench/gateway/setup.sh) does that.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    CHATGATE,
    OUT,
    CpuMeter,
    ScratchPostgres,
    chatgate_source,
    machine_line,
    percentile,
    process_tree_cpu_seconds,
    raise_file_limit,
    serve_chatgate,
)
from history_seed import ASSISTANT, LONG, SHORT, Seeded, seed

from chatgate.chat.schemas import MessageOut

DEPTHS = (0.25, 0.50, 0.90)  # how far back the deep pages start, as shares of the long session

# No engine is called by a history read; a remote provider that is never contacted keeps the
# server from loading the bundled model in every worker.
BENCH_CONFIG = f"""\
providers:
  - id: bench-unused
    type: openai
    base_url: http://127.0.0.1:9/v1
assistants:
  - id: {ASSISTANT}
    name: Benchmark assistant
    provider: bench-unused
    model: bench
# One user stands in for a thousand here; the limiter still runs on every request.
rate_limits:
  requests_per_minute: 100000000
  ip_requests_per_minute: 100000000
"""


class Client:
    """One keep-alive HTTP/1.1 connection, timed per request from send to last body byte."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        return elapsed, body

    def close(self) -> None:
        self.conn.close()


@dataclass
class Case:
    label: str
    path: str
    expected_ids: list[uuid.UUID]
    latencies: list[float]
    has_more: bool = True
    size: int = 0
    server_cpu: float = 0.0  # seconds, over all of the case's timed requests


def check_page(case: Case, body: bytes) -> None:
    """The page is exactly the expected messages, oldest first, each shaped as MessageOut."""
    page = json.loads(body)
    got = [uuid.UUID(m["id"]) for m in page["data"]]
    if got != case.expected_ids:
        raise RuntimeError(f"{case.label}: wrong page ({len(got)} messages)")
    if page["has_more"] != case.has_more or (
        case.has_more and page["next_before"] != page["data"][0]["id"]
    ):
        raise RuntimeError(f"{case.label}: wrong has_more/next_before")
    for message in page["data"]:
        if MessageOut.model_validate(message).model_dump(mode="json") != message:
            raise RuntimeError(f"{case.label}: a message is not shaped as MessageOut: {message}")
    case.size = len(body)


def sequential(port: int, cases: list[Case], requests: int, *, server_pid: int) -> None:
    """Interleaves the cases in rounds so that drift in machine load hits all of them alike;
    counts the server's CPU time spent on each case's requests too."""
    client = Client(port)
    try:
        for case in cases:  # warm-up, and a correctness check of every page
            for _ in range(50):
                _, body = client.get(case.path)
            check_page(case, body)
        per_round = max(1, requests // 10)
        for _ in range(10):
            for case in cases:
                cpu = process_tree_cpu_seconds(server_pid)
                for _ in range(per_round):
                    case.latencies.append(client.get(case.path)[0])
                case.server_cpu += process_tree_cpu_seconds(server_pid) - cpu
    finally:
        client.close()


LUA = Path(__file__).with_name("history.lua")


def run_wrk(
    url: str, *, connections: int, mode: str, duration: str, pid: int, database: str
) -> dict[str, Any]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}", "--timeout", "10s",
               "-s", str(LUA), url, "--", mode]  # fmt: skip
    with CpuMeter(server_pid=pid, database=database) as meter:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = OUT / f"wrk-c{connections}-{mode}.txt"
    output.write_text(" ".join(command) + "\n\n" + result.stdout + result.stderr)
    line = next((x for x in result.stdout.splitlines() if x.startswith("wrk-json ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr[-500:]}")
    figures: dict[str, Any] = json.loads(line.removeprefix("wrk-json "))
    errors = ("connect", "read", "write", "timeout")
    figures["errors"] = sum(figures[k] for k in errors)
    figures["rps"] = figures["requests"] / figures["seconds"]
    statuses = {int(code): n for code, n in figures["statuses"].items()}
    figures["ok"] = statuses.get(200, 0) + statuses.get(304, 0)
    figures["not_modified"] = statuses.get(304, 0)
    figures["non_ok"] = sum(n for code, n in statuses.items() if code not in (200, 304))
    figures.update({f"cores_{name}": value for name, value in meter.cores.items()})
    figures.update(connections=connections, mode=mode, output=output)
    return figures


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def build_cases(seeded: Seeded) -> list[Case]:
    short_path = f"/v1/history/{seeded.short_id}?limit=50"
    long_path = f"/v1/history/{seeded.long_id}?limit=50"
    cases = [
        Case("short session (10), newest page", short_path, seeded.short_ids, [], False),
        Case("long session (10,000), newest page", long_path, seeded.long_ids[-50:], []),
        Case(
            "long session, newest page, limit=10",
            f"/v1/history/{seeded.long_id}?limit=10",
            seeded.long_ids[-10:],
            [],
        ),
    ]
    for depth in DEPTHS:
        index = round(LONG * (1 - depth))
        cases.append(
            Case(
                f"long session, page {depth:.0%} deep",
                f"{long_path}&before={seeded.long_ids[index]}",
                seeded.long_ids[index - 50 : index],
                [],
            )
        )
    return cases


BENCH_KEYS = "bench1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="


def chatgate_cli(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # The console script: `python -m` would put the working directory's chatgate first.
    command = [str(CHATGATE), *args]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if check and done.returncode:
        sys.exit(f"chatgate {' '.join(args)} failed: {done.stderr[-800:]}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per case")
    parser.add_argument(
        "--connections",
        default="1000",
        help="wrk -c, comma-separated for several runs (e.g. 250,500,1000); "
        "the target applies to 1000",
    )
    parser.add_argument(
        "--load",
        default="plain,conditional",
        help="the load runs at each level: plain (whole pages), conditional (If-None-Match)",
    )
    parser.add_argument("--duration", default="15s")
    parser.add_argument("--skip-load", action="store_true", help="skip the wrk runs")
    parser.add_argument("--database", default="chatgate_bench")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--plain", action="store_true", help="encryption at rest off (to see what it costs)"
    )
    parser.add_argument(
        "--chatgate",
        metavar="REF_OR_DIR",
        help="serve chatgate as of this git commit (or from this directory holding a chatgate "
        "package); default: the working tree. Run twice to compare two versions",
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    modes = [m for m in args.load.split(",") if m]
    if set(modes) - {"plain", "conditional"}:
        sys.exit("--load takes plain and/or conditional")

    if not args.skip_load and shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed. Install it with `apt-get install -y wrk` (or "
            "bench/gateway/setup.sh), or run with --skip-load."
        )
    nofile = raise_file_limit()
    if nofile < 2 * max(levels) + 200:  # wrk's sockets and the server's, in one limit
        sys.exit(f"RLIMIT_NOFILE is {nofile}; {max(levels)} connections need more")
    OUT.mkdir(parents=True, exist_ok=True)
    config = OUT / "history-config.yaml"
    config.write_text(BENCH_CONFIG)
    print(f"machine: {machine_line()}", flush=True)

    db = ScratchPostgres(args.database)
    db.create()
    loads: list[dict[str, Any]] = []
    try:
        env = {"CHATGATE_DATABASE_URL": db.url, "CHATGATE_AUTH_MODE": "none",
               "CHATGATE_LOG_LEVEL": "WARNING", "CHATGATE_ENCRYPTION_KEYS": BENCH_KEYS}  # fmt: skip
        source, label = chatgate_source(args.chatgate, OUT)
        if source is not None:
            env["PYTHONPATH"] = str(source)
        print(f"chatgate: {label}", flush=True)
        chatgate_cli(env, "migrate")  # by the version served: its own migrations
        started = time.monotonic()
        seeded = asyncio.run(seed(db.dsn))
        print(f"seeded {SHORT} + {LONG} messages in {time.monotonic() - started:.1f}s", flush=True)
        if args.plain:
            env["CHATGATE_ENCRYPTION_ENABLED"] = "false"
        elif chatgate_cli(env, "rotate-keys", "--help", check=False).returncode == 0:
            # A version that seals conversations at rest reads them sealed, as it stores them.
            print(chatgate_cli(env, "rotate-keys").stdout.strip(), flush=True)
        with serve_chatgate(env=env, workers=args.workers, config=config, log_name="history") as (
            port,
            process,
        ):
            cases = build_cases(seeded)
            sequential(port, cases, args.requests, server_pid=process.pid)
            url = f"http://127.0.0.1:{port}{cases[1].path}"
            runs = [(c, m) for c in levels for m in modes]
            for connections, mode in [] if args.skip_load else runs:
                loads.append(
                    run_wrk(
                        url,
                        connections=connections,
                        mode=mode,
                        duration=args.duration,
                        pid=process.pid,
                        database=args.database,
                    )
                )
                if process.poll() is not None:
                    sys.exit(
                        f"chatgate exited during the load run (code {process.returncode}); "
                        f"see {OUT / 'history.log'}"
                    )
    finally:
        if not args.keep_db:
            db.drop()

    report(args, cases, loads)


def report(args: argparse.Namespace, cases: list[Case], loads: list[dict[str, Any]]) -> None:
    print()
    print(f"chatgate serve --workers {args.workers} (PostgreSQL, auth none, 127.0.0.1)")
    print(
        f"(a, b) sequential GET over one keep-alive connection, {args.requests} requests a case, "
        "interleaved in 10 rounds; server CPU = chatgate's CPU time per request"
    )
    print(
        f"{'case':<40}{'msgs':>6}{'bytes':>8}{'median ms':>11}{'p99 ms':>9}"
        f"{'server CPU ms/req':>19}"
    )
    for case in cases:
        print(
            f"{case.label:<40}{len(case.expected_ids):>6}{case.size:>8}"
            f"{percentile(case.latencies, 50):>11.2f}{percentile(case.latencies, 99):>9.2f}"
            f"{case.server_cpu * 1000 / len(case.latencies):>19.2f}"
        )
    short, long, long10 = cases[0], cases[1], cases[2]
    for label, a, b in (
        ("long/short, newest page (limit=50)", long, short),
        ("long/short, same page size (limit=10)", long10, short),
    ):
        median = percentile(a.latencies, 50) / percentile(b.latencies, 50)
        p99 = percentile(a.latencies, 99) / percentile(b.latencies, 99)
        print(f"ratio {label}: median {median:.2f}x, p99 {p99:.2f}x")
    ratio = percentile(long.latencies, 50) / percentile(short.latencies, 50)
    print(f"  target: long within 1.2x of short (median) -> {verdict(ratio <= 1.2)}")
    if not loads:
        return
    print()
    print(
        f"(c) wrk -t2 -c <connections> -d {args.duration} -s bench/history.lua "
        "<long session newest page, limit=50> [-- conditional]: each connection waits "
        "0.5-1.5 s between reads"
    )
    print(
        f"{'conns':>6} {'load':<12}{'got/s':>7}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'200/304':>8}{'304s':>7}{'other':>6}{'errors':>7}"
        "   cores: chatgate  wrk postgres others"
    )
    for load in loads:
        print(
            f"{load['connections']:>6} {load['mode']:<12}{load['rps']:>7.0f}{load['p50']:>8.1f}"
            f"{load['p90']:>8.1f}{load['p99']:>8.1f}{load['max']:>8.1f}{load['ok']:>8}"
            f"{load['not_modified']:>7}{load['non_ok']:>6}{load['errors']:>7}"
            f"{load['cores_server']:>17.2f}{load['cores_load_tool']:>5.2f}"
            f"{load['cores_postgres']:>9.2f}{load['cores_others']:>7.2f}"
        )
    print(
        f"  cores = average cores busy during the run, of {os.cpu_count()}: "
        "others is the rest of the machine (other people's work)"
    )
    for load in loads:
        if load["connections"] == 1000:
            ok = load["p99"] < 50 and load["errors"] == 0 and load["non_ok"] == 0
            print(
                f"  target at 1,000 connections ({load['mode']}): p99 < 50 ms and zero errors "
                f"-> {verdict(ok)}"
            )
    print(f"  wrk's full outputs: {OUT}/wrk-c<connections>-<load>.txt")


if __name__ == "__main__":
    main()
