"""Knowledge retrieval: its quality on public documents, ingestion speed, query latency
(docs/benchmarks.md, "Knowledge retrieval").

quality: the Debian Reference in English and Chinese (bench/retrieval_corpus.py), each PDF
  ingested whole by chatgate's own ingestion on the bundled embedder, then every question of
  bench/qa/ asked three ways, keyword-only (BM25 / ts_rank: the anchor), vector-only and hybrid
  (what assistants use), modes alternating per question; prints recall@5, MRR@10, the median
  query latency (the question's embedding included) and the ingestion rate.
ingest: a 100-page PDF (pages 30-129 of the English manual, all body text) through ingestion.
latency: `Retriever.retrieve` over one knowledge base of 10,000 chunks: random unit vectors of
  384 dimensions, every chunk's search_text sharing the question's words (the keyword side ranks
  every row: the worst case), the query vector precomputed, `--runs` questions after a warm-up.

    .venv/bin/python bench/retrieval.py quality [--database postgresql] [--language en]
    .venv/bin/python bench/retrieval.py ingest [--pages 100]
    .venv/bin/python bench/retrieval.py latency --database sqlite|postgresql [--profile]
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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import asyncpg
import numpy as np
from retrieval_corpus import LANGUAGES, corpus_pdf, pdf_pages, questions

from chatgate.auth.service import User
from chatgate.core.config import Settings
from chatgate.core.db import Database
from chatgate.core.migrate import upgrade_database
from chatgate.knowledge.embedders import Embedders
from chatgate.knowledge.ingest import Ingestion
from chatgate.knowledge.models import ChunkRow, DocumentRow, KnowledgeBaseRow
from chatgate.knowledge.parsing import PDF
from chatgate.knowledge.retrieval import Retriever, SearchMode
from chatgate.knowledge.schemas import KnowledgeBaseCreate
from chatgate.knowledge.service import Knowledge

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


MODES: tuple[SearchMode, ...] = ("keyword", "vector", "hybrid")
BENCH_USER = User(id="bench", is_admin=True)


class _Knowledge:
    """chatgate's knowledge parts on one database, as the runtime builds them."""

    def __init__(self, url: str) -> None:
        settings = Settings(database_url=url)
        self.database = Database(url)
        self.embedders = Embedders.build(settings)
        ingestion = Ingestion(
            database=self.database, embedders=self.embedders, settings=settings.knowledge
        )
        self.knowledge = Knowledge(
            database=self.database, embedders=self.embedders, ingestion=ingestion,
            settings=settings.knowledge,
        )  # fmt: skip
        self.retriever = Retriever(database=self.database, embedders=self.embedders)

    async def ingest(self, kb_id: str, name: str, content: bytes) -> tuple[float, int, int]:
        """Seconds from upload to `ready`, pages and chunks."""
        await self.knowledge.create_base(
            user=BENCH_USER,
            spec=KnowledgeBaseCreate(id=kb_id, name=name, top_k=10, score_threshold=0.0),
        )
        start = time.perf_counter()
        document, _ = await self.knowledge.add_document(
            user=BENCH_USER, kb_id=kb_id, name=name, media_type=PDF, content=content
        )
        while document.status == "processing":
            await asyncio.sleep(0.05)
            document = await self.knowledge.document(kb_id, document.id)
        seconds = time.perf_counter() - start
        if document.status != "ready":
            raise SystemExit(f"{name}: ingestion failed: {document.error}")
        return seconds, int(document.page_count or 0), document.chunk_count


async def _quality(url: str, languages: list[str]) -> None:
    parts = _Knowledge(url)
    await parts.embedders.start()
    print(
        "| language | questions | mode | recall@5 | MRR@10 | query median | ingestion |\n"
        "| --- | --- | --- | --- | --- | --- | --- |"
    )
    for language in languages:
        kb_id = f"debian-reference-{language}"
        content = corpus_pdf(language).read_bytes()
        seconds, pages, chunks = await parts.ingest(kb_id, f"{kb_id}.pdf", content)
        rate = f"{pages} pages, {chunks} chunks in {seconds:.0f} s ({pages / seconds:.2f} pages/s)"
        asked = questions(language)
        ranks: dict[str, list[int | None]] = {mode: [] for mode in MODES}
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for n, question in enumerate(asked):
            for mode in MODES[n % 3 :] + MODES[: n % 3]:  # each mode goes first in turn
                start = time.perf_counter()
                found = await parts.retriever.retrieve([kb_id], question.question, mode=mode)
                times[mode].append((time.perf_counter() - start) * 1000)
                hits = [i for i, p in enumerate(found, 1) if question.answered_by(p.text)]
                ranks[mode].append(hits[0] if hits else None)
        for mode in MODES:
            found_ranks = ranks[mode]
            recall = sum(1 for r in found_ranks if r is not None and r <= 5) / len(asked)
            mrr = sum(1 / r for r in found_ranks if r is not None) / len(asked)
            median = statistics.median(times[mode])
            print(
                f"| {language} | {len(asked)} | {mode} | {recall:.3f} | {mrr:.3f} | "
                f"{median:.1f} ms | {rate if mode == 'hybrid' else ''} |"
            )
    await parts.embedders.close()
    await parts.database.close()


async def _ingest(url: str, pages: int) -> None:
    parts = _Knowledge(url)
    await parts.embedders.start()
    content = pdf_pages(corpus_pdf("en"), 30, pages)
    seconds, counted, chunks = await parts.ingest("pdf", "manual.pdf", content)
    print(
        f"{counted} pages, {chunks} chunks, {len(content) / 1e6:.1f} MB: ready in {seconds:.1f} s"
    )
    await parts.embedders.close()
    await parts.database.close()


@asynccontextmanager
async def _database(kind: str) -> AsyncIterator[str]:
    """A new, empty database of this kind, migrated; dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            await asyncio.to_thread(upgrade_database, url)
            yield url
        return
    name = f"bench_retrieval_{uuid.uuid4().hex[:8]}"
    admin: Any = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        await asyncio.to_thread(upgrade_database, f"{base}/{name}")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _main(args: argparse.Namespace) -> None:
    commands: dict[str, Callable[[str], Awaitable[None]]] = {
        "quality": lambda url: _quality(url, args.language or list(LANGUAGES)),
        "ingest": lambda url: _ingest(url, args.pages),
        "latency": lambda url: _time(url, chunks=args.chunks, runs=args.runs, profile=args.profile),
    }
    async with _database(args.database) as url:
        await commands[args.command](url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["quality", "ingest", "latency"])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--language", choices=LANGUAGES, action="append", help="quality: one")
    parser.add_argument("--pages", type=int, default=100, help="ingest: the PDF's pages")
    parser.add_argument("--chunks", type=int, default=10_000, help="latency: chunks")
    parser.add_argument("--runs", type=int, default=30, help="latency: questions timed")
    parser.add_argument("--profile", action="store_true", help="latency: cProfile the runs")
    asyncio.run(_main(parser.parse_args()))
