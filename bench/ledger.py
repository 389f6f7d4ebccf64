"""The usage ledger's cost: what `Ledger.record` adds to a request (µs a call, no I/O), and the
rows a second its writer puts into PostgreSQL, in a database of its own (dropped after).

    .venv/bin/python bench/ledger.py [--calls 100000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Three figures: `record` alone; a backlog of `--calls` rows written in one go (`flush`, as after
an outage or at a stop: statements of 500 rows in one transaction; each call of a caller of its
own, so none is summed into another's row), the rows a second the writer can sustain; and the
writer as it runs, its task writing each second or at 500 rows while 1,000 callers record RATE
calls a second for a few seconds (how many wait at most, any dropped, and the rows their calls
were summed into).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

import asyncpg
from sqlalchemy import func, select

from chatgate.core.config import PriceConfig
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.usage.ledger import MAX_ROWS, Ledger
from chatgate.usage.models import UsageRecord
from chatgate.usage.prices import Prices

SUSTAIN_SECONDS = 5.0
RATE = 5_000  # calls a second in the running phase: more than one process answers


def record(ledger: Ledger, i: int, *, users: int = 1000) -> None:
    ledger.record(
        user_id=f"user-{i % users}", key_id=None if i % 3 else f"key-{i % 50}",
        assistant_id="support", route="chat_completions", engine="openai",
        model="gpt-4o-mini", prompt_tokens=120 + i % 50, completion_tokens=80,
    )  # fmt: skip


async def run(url: str, calls: int) -> None:
    database = Database(url, pool_size=4)
    prices = Prices(database=database, redis=None)
    await prices.seed({"gpt-4o-mini": PriceConfig(input_per_million=0.15, output_per_million=0.6)})
    try:
        idle = Ledger(database=database, prices=prices)  # not started: record() alone
        started = time.perf_counter()
        for i in range(min(calls, MAX_ROWS)):
            record(idle, i, users=calls)
        took = time.perf_counter() - started
        print(f"record: {took / min(calls, MAX_ROWS) * 1e6:.2f} µs a call (no I/O)")

        started = time.perf_counter()
        assert await idle.flush()
        took = time.perf_counter() - started
        print(f"backlog: {idle.pending} left; {min(calls, MAX_ROWS):,} rows in {took:.2f} s "
              f"= {min(calls, MAX_ROWS) / took:,.0f} rows/s")  # fmt: skip

        live = Ledger(database=database, prices=prices)
        await live.start()
        recorded, worst = 0, 0
        started = time.perf_counter()
        while (now := time.perf_counter() - started) < SUSTAIN_SECONDS:
            while recorded < now * RATE:  # callers at RATE a second, as between requests
                record(live, recorded)
                recorded += 1
            worst = max(worst, live.pending)
            await asyncio.sleep(0.005)
        produced = time.perf_counter() - started
        await live.close()
        took = time.perf_counter() - started
        async with database.session() as db:
            rows = await db.scalar(select(func.count()).select_from(UsageRecord)) or 0
        summed_into = rows - min(calls, MAX_ROWS)
        print(f"running writer at {RATE:,} calls/s for {produced:.1f} s: {recorded:,} recorded, "
              f"at most {worst:,} waiting, {live._dropped} dropped, the last written "
              f"{took - produced:.2f} s after, as {summed_into:,} rows")  # fmt: skip
    finally:
        await database.close()


async def _admin(pg: str, statement: str) -> None:
    conn = await asyncpg.connect(pg)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    name = f"chatgate_bench_ledger_{secrets.token_hex(4)}"
    asyncio.run(_admin(args.pg, f'CREATE DATABASE "{name}"'))
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    try:
        upgrade_database(url)
        asyncio.run(run(url, args.calls))
    finally:
        asyncio.run(_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
