"""Backup and restore speed (`chatgate backup`, `chatgate restore`) on a database of MESSAGES
messages, both ways between SQLite and PostgreSQL, each command run as a person runs it (a
process of its own, start-up included), with its wall time, peak memory and the archive's size.

    .venv/bin/python bench/backup.py [--messages 100000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Message text is stored sealed, as with encryption on: random bytes under `cg1:`, which, like
real ciphertext, does not compress.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert

from chatgate.chat.models import ChatSession, Message
from chatgate.core.db import Database
from chatgate.core.ids import new_id
from chatgate.core.migrate import upgrade_database

CHATGATE = str(Path(sys.executable).with_name("chatgate"))
PER_SESSION = 100
KEYS = "bench1:" + base64.b64encode(b"b" * 32).decode()


@dataclass
class Run:
    what: str
    seconds: float
    peak_mib: float
    detail: str


def _sealed(rng: random.Random) -> str:
    size = rng.randint(40, 600)  # bytes of text: a short question to a paragraph of answer
    return f"cg1:{secrets.token_hex(8)}:{base64.b64encode(rng.randbytes(size + 28)).decode()}"


async def seed(database_url: str, messages: int) -> None:
    rng = random.Random(14)
    database = Database(database_url)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        for first in range(0, messages, PER_SESSION * 10):
            sessions, rows = [], []
            for _ in range(10):
                session_id, at = new_id(), start + timedelta(minutes=len(rows))
                sessions.append(
                    {"id": session_id, "user_id": f"user-{rng.randrange(500)}",
                     "assistant_id": "helper", "title": _sealed(rng),
                     "message_count": PER_SESSION, "created_at": at, "updated_at": at}
                )  # fmt: skip
                rows.extend(
                    {"id": new_id(), "session_id": session_id,
                     "role": "user" if n % 2 == 0 else "assistant", "content": _sealed(rng),
                     "token_count": rng.randint(10, 200), "usage": {"total_tokens": 42},
                     "created_at": at, "updated_at": at}
                    for n in range(PER_SESSION)
                )  # fmt: skip
            async with database.session() as db:
                await db.execute(insert(ChatSession), sessions)
                await db.execute(insert(Message), rows[: messages - first])
                await db.commit()
    finally:
        await database.close()


def run(what: str, database_url: str, *args: str, cwd: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    env |= {"CHATGATE_DATABASE_URL": database_url, "CHATGATE_ENCRYPTION_KEYS": KEYS}
    started = time.perf_counter()
    process = subprocess.Popen([CHATGATE, *args], env=env, cwd=cwd, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read().decode().strip() if process.stdout else ""
    if status != 0:
        raise SystemExit(f"{what} failed: {output}")
    return Run(what, seconds, usage.ru_maxrss / 1024, output)


async def _admin(pg: str, sql: str) -> None:
    conn = await asyncpg.connect(pg)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="chatgate-bench-backup-"))
    name = f"chatgate_bench_backup_{secrets.token_hex(4)}"
    pg_url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    pg_url = f"{pg_url}/{name}"
    sqlite_url = f"sqlite+aiosqlite:///{folder}/source.db"
    upgrade_database(sqlite_url)
    asyncio.run(seed(sqlite_url, args.messages))
    asyncio.run(_admin(args.pg, f'CREATE DATABASE "{name}"'))
    runs: list[Run] = []
    try:
        runs.append(run("backup SQLite", sqlite_url, "backup", "sqlite.bak", cwd=folder))
        runs.append(run("restore into PostgreSQL", pg_url, "restore", "sqlite.bak", cwd=folder))
        runs.append(run("backup PostgreSQL", pg_url, "backup", "pg.bak", cwd=folder))
        moved = f"sqlite+aiosqlite:///{folder}/moved.db"
        runs.append(run("restore into SQLite", moved, "restore", "pg.bak", cwd=folder))
    finally:
        asyncio.run(_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    start = run("start-up (chatgate --help)", sqlite_url, "--help", cwd=folder)
    sizes: dict[str, Any] = {p.name: p.stat().st_size for p in folder.glob("*.bak")}
    print(f"{args.messages:,} messages; archives: " + ", ".join(
        f"{n} {s / 2**20:.1f} MiB" for n, s in sorted(sizes.items())))  # fmt: skip
    print("| command | seconds | messages/s | peak RSS |")
    print("| --- | --- | --- | --- |")
    for item in runs:
        rate = args.messages / item.seconds
        print(f"| {item.what} | {item.seconds:.1f} | {rate:,.0f} | {item.peak_mib:.0f} MiB |")
    print(f"| {start.what} | {start.seconds:.1f} | | {start.peak_mib:.0f} MiB |")


if __name__ == "__main__":
    main()
