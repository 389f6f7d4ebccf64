"""Times `Retriever.retrieve` over one knowledge base of 10,000 chunks (docs/benchmarks.md,
"Knowledge retrieval"): random unit vectors of 384 dimensions, every chunk's search_text sharing
the question's words (the keyword side ranks every row: the worst case), the query vector
precomputed, `--runs` questions after one warm-up.

    .venv/bin/python bench/retrieval.py --database sqlite
    .venv/bin/python bench/retrieval.py --database postgresql [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

import asyncpg
import numpy as np

from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.knowledge.embedders import Embedders
from chatgate.knowledge.models import ChunkRow, DocumentRow, KnowledgeBaseRow
from chatgate.knowledge.retrieval import Retriever

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
DIMENSION = 384
QUESTION = "how do I reset the router password"


class _Fixed:
    """An embedder answering every question with one precomputed vector."""

    def __init__(self, vector: list[float]) -> None:
        self.vector = vector

    async def embed_query(self, text: str) -> list[float]:
        return self.vector

    def get(self, name: str) -> _Fixed:
        return self


async def _seed(database: Database, chunks: int, rng: np.random.Generator) -> None:
    vectors = rng.standard_normal((chunks, DIMENSION)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with database.session() as db:
        db.add(KnowledgeBaseRow(id="kb", name="bench", embedder="fixed", dimension=DIMENSION))
        await db.flush()
        document = DocumentRow(
            kb_id="kb", name="manual.txt", sha256="0" * 64, media_type="text/plain", size=1,
            status="ready", progress=1.0, chunk_count=chunks, content=b"",
        )  # fmt: skip
        db.add(document)
        await db.flush()
        words = QUESTION.split()
        for i in range(chunks):
            text = f"chunk {i} " + " ".join(rng.choice(words, size=8).tolist())
            db.add(
                ChunkRow(
                    kb_id="kb",
                    document_id=document.id,
                    ordinal=i,
                    text=text,
                    token_count=10,
                    embedding=vectors[i].tobytes(),
                    search_text=text,
                )
            )
        await db.commit()


async def _time(url: str, *, chunks: int, runs: int, profile: bool) -> None:
    await asyncio.to_thread(upgrade_database, url)
    database = Database(url)
    rng = np.random.default_rng(7)
    await _seed(database, chunks, rng)
    question = rng.standard_normal(DIMENSION).astype("<f4")
    question /= np.linalg.norm(question)
    embedders = cast(Embedders, _Fixed(question.tolist()))
    retriever = Retriever(database=database, embedders=embedders)
    await retriever.retrieve(["kb"], QUESTION)
    profiler = cProfile.Profile() if profile else None
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        found = await retriever.retrieve(["kb"], QUESTION)
        if profiler:
            profiler.disable()
        times.append((time.perf_counter() - start) * 1000)
        assert found
    times.sort()
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"{url.split(':')[0]}: median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    await database.close()


async def _main(args: argparse.Namespace) -> None:
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            await _time(url, chunks=args.chunks, runs=args.runs, profile=args.profile)
        return
    name = f"bench_retrieval_{uuid.uuid4().hex[:8]}"
    admin: Any = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        await _time(f"{url}/{name}", chunks=args.chunks, runs=args.runs, profile=args.profile)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="cProfile the timed runs")
    asyncio.run(_main(parser.parse_args()))
