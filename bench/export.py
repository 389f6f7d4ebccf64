"""Export benchmark: does a user with 100,000 messages export in the memory of one with 10,000?

    .venv/bin/python bench/export.py [--sizes 10000,100000] [--per-session 100] [--keep-db]

Creates a scratch PostgreSQL database (chatgate_export_bench), migrates it, seeds one user per
size (sessions of --per-session messages of plausible lengths, every tenth answer with a
citation), sealed at rest with the user's data key as chatgate itself seals them, serves it with
`chatgate serve` (one worker, auth none, loopback; rate limits off, as the export's allowance
would refuse the repeated runs) and, per size and format, GETs /v1/me/export as that user
(X-Chatgate-User), reading the body as it comes. Measured: the server process's peak RSS growth
during the export (its peak, VmHWM, reset through /proc/PID/clear_refs just before, minus its
RSS then), the time to the last byte, the server's CPU time, and the body's size. Each export is
checked: every session and message is there (JSON parsed; each zip member opened).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import asyncpg
import httpx
from harness import (
    OUT,
    ScratchPostgres,
    machine_line,
    percentile,
    process_tree_cpu_seconds,
    serve_chatgate,
)
from history_seed import _text

from chatgate.core.db import Database
from chatgate.core.ids import new_id
from chatgate.core.migrate import upgrade_database
from chatgate.providers.base import estimate_tokens
from chatgate.vault.keyring import KeyRing
from chatgate.vault.service import Vault

BENCH_CONFIG = """\
providers:
  - id: bench-unused
    type: openai
    base_url: http://127.0.0.1:9/v1
    api_key_env: BENCH_UNUSED_KEY
assistants:
  - id: helper
    name: Helper
    provider: bench-unused
    model: unused
"""
MESSAGE_COLUMNS = [
    "id", "session_id", "role", "content", "status", "token_count", "model", "usage",
    "citations", "created_at", "updated_at",
]  # fmt: skip
WARM_UP_USER = "bench-warm-up"


@dataclass
class Run:
    size: int
    export_format: str
    seconds: float
    rss_before_mb: float
    peak_growth_mb: float
    server_cpu: float
    body_mb: float
    probe_ms: list[float]


PROBE = """
import json, sys, threading, time, http.client
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
latencies = []
while not done.is_set():
    started = time.perf_counter()
    conn.request("GET", "/health")
    conn.getresponse().read()
    latencies.append((time.perf_counter() - started) * 1000)
    time.sleep(0.01)
print(json.dumps(latencies))
"""


class Probe:
    """GET /health every 10 ms over one keep-alive connection, from a process of its own, while
    an export runs: how long the export makes another request wait for the server."""

    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", PROBE, str(port)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def stop(self) -> list[float]:
        out, _ = self.process.communicate("", timeout=60)
        latencies: list[float] = json.loads(out)
        return latencies


def user_for(size: int) -> str:
    return f"bench-{size}"


def citation(rng: random.Random) -> str:
    return json.dumps(
        [{"index": 1, "document_id": str(uuid.uuid4()), "document_name": "manual.pdf",
          "chunk_id": str(uuid.uuid4()), "page": rng.randint(1, 90), "score": 0.9,
          "text": _text(rng, 300, 700)}]
    )  # fmt: skip


async def seed_user(conn: asyncpg.Connection, vault: Vault, *, user: str, size: int,
                    per_session: int, rng: random.Random) -> None:  # fmt: skip
    """`size` messages in sessions of `per_session`, sealed with the user's data key."""
    cipher = await vault.cipher(user)
    start = datetime.now(UTC) - timedelta(seconds=30 * size)
    for first in range(0, size, per_session):
        session_id = new_id()
        count = min(per_session, size - first)
        stamp = start + timedelta(seconds=30 * first)
        await conn.execute(
            "INSERT INTO sessions (id, user_id, assistant_id, title, message_count, created_at, "
            "updated_at) VALUES ($1, $2, 'helper', $3, $4, $5, $5)",
            session_id, user, cipher.seal(f"Bench conversation {first // per_session}"),
            count, stamp,
        )  # fmt: skip
        rows = []
        for i in range(count):
            asked = i % 2 == 0
            text = _text(rng, 40, 400) if asked else _text(rng, 200, 1200)
            cited = not asked and i % 20 == 1
            when = stamp + timedelta(seconds=30 * i)
            rows.append((
                new_id(), session_id, "user" if asked else "assistant", cipher.seal(text),
                "complete", estimate_tokens(text), None if asked else "unused",
                None if asked else json.dumps({"prompt_tokens": 200, "completion_tokens": 90}),
                cipher.seal(citation(rng)) if cited else None, when, when,
            ))  # fmt: skip
        await conn.copy_records_to_table("messages", records=rows, columns=MESSAGE_COLUMNS)


async def seed(db: ScratchPostgres, keys: str, sizes: list[int], per_session: int) -> None:
    database = Database(db.url)
    vault = Vault(database, KeyRing.parse(keys))
    conn = await asyncpg.connect(db.dsn)
    rng = random.Random(7)
    try:
        await seed_user(conn, vault, user=WARM_UP_USER, size=200, per_session=per_session, rng=rng)
        for size in sizes:
            await seed_user(
                conn, vault, user=user_for(size), size=size, per_session=per_session, rng=rng
            )
        await conn.execute("ANALYZE sessions; ANALYZE messages")
    finally:
        await conn.close()
        await database.close()


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def export_once(port: int, pid: int, *, user: str, export_format: str, size: int) -> Run:
    """One export, its body written to a scratch file as it arrives, then checked."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    before = memory_kb(pid, "VmRSS")
    cpu = process_tree_cpu_seconds(pid)
    started = time.monotonic()
    probe = Probe(port)
    time.sleep(0.2)  # its interpreter started
    with tempfile.TemporaryFile() as body, httpx.Client(timeout=600) as client:
        with client.stream(
            "GET", f"http://127.0.0.1:{port}/v1/me/export", params={"format": export_format},
            headers={"X-Chatgate-User": user},
        ) as response:  # fmt: skip
            response.raise_for_status()
            for chunk in response.iter_raw(256 * 1024):
                body.write(chunk)
        seconds = time.monotonic() - started
        probe_ms = probe.stop()
        peak = memory_kb(pid, "VmHWM")
        server_cpu = process_tree_cpu_seconds(pid) - cpu
        size_mb = body.tell() / 2**20
        body.seek(0)
        check(body, export_format=export_format, size=size)
    return Run(size, export_format, seconds, before / 1024, (peak - before) / 1024, server_cpu,
               size_mb, probe_ms)  # fmt: skip


def check(body: IO[bytes], *, export_format: str, size: int) -> None:
    if export_format == "json":
        exported = json.load(body)
        messages = [m for s in exported["sessions"] for m in s["messages"]]
        assert len(messages) == size, (len(messages), size)
        assert all(m["content"] and not m["content"].startswith("cg1:") for m in messages)
        return
    with zipfile.ZipFile(body) as archive:
        names = archive.namelist()
        headings = sum(archive.read(name).decode().count("\n## ") for name in names)
    assert headings == size, (headings, size)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="messages per user")
    parser.add_argument("--per-session", type=int, default=100, help="messages per session")
    parser.add_argument("--database", default="chatgate_export_bench")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    config = OUT / "export-config.yaml"
    config.write_text(BENCH_CONFIG)
    keys = f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    print(f"machine: {machine_line()}", flush=True)

    db = ScratchPostgres(args.database)
    db.create()
    runs: list[Run] = []
    try:
        upgrade_database(db.url)
        started = time.monotonic()
        asyncio.run(seed(db, keys, sizes, args.per_session))
        print(f"seeded {sizes} messages in {time.monotonic() - started:.1f}s", flush=True)
        env = {"CHATGATE_DATABASE_URL": db.url, "CHATGATE_AUTH_MODE": "none",
               "CHATGATE_LOG_LEVEL": "WARNING", "CHATGATE_ENCRYPTION_KEYS": keys,
               "CHATGATE_RATE_LIMITS__ENABLED": "false", "BENCH_UNUSED_KEY": "unused"}  # fmt: skip
        with serve_chatgate(env=env, workers=1, config=config, log_name="export") as (port, proc):
            for export_format in ("json", "markdown"):  # imports and first-use allocations
                export_once(port, proc.pid, user=WARM_UP_USER, export_format=export_format,
                            size=200)  # fmt: skip
            for size in sizes:
                for export_format in ("json", "markdown"):
                    run = export_once(
                        port, proc.pid, user=user_for(size), export_format=export_format, size=size
                    )
                    runs.append(run)
                    print(f"{size} {export_format}: {run.seconds:.2f}s", flush=True)
    finally:
        if not args.keep_db:
            db.drop()
    report(runs, args.per_session)


def report(runs: list[Run], per_session: int) -> None:
    print()
    print(f"chatgate serve --workers 1 (PostgreSQL, sealed at rest), {per_session} per session")
    print(f"{'messages':>9}{'format':>10}{'seconds':>9}{'msgs/s':>9}{'RSS before MB':>15}"
          f"{'peak growth MB':>16}{'server CPU s':>14}{'body MB':>9}"
          f"{'/health p50/p99/max ms':>24}")  # fmt: skip
    for run in runs:
        print(
            f"{run.size:>9}{run.export_format:>10}{run.seconds:>9.2f}"
            f"{run.size / run.seconds:>9.0f}{run.rss_before_mb:>15.1f}"
            f"{run.peak_growth_mb:>16.1f}{run.server_cpu:>14.2f}{run.body_mb:>9.1f}"
            f"{percentile(run.probe_ms, 50):>10.1f}/{percentile(run.probe_ms, 99):.1f}"
            f"/{max(run.probe_ms):.1f}"
        )
    print(f"pid {os.getpid()}; server log: {OUT / 'export.log'}")


if __name__ == "__main__":
    main()
