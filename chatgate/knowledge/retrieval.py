"""Hybrid retrieval: the passages of knowledge bases that best answer a question.

Each knowledge base is searched two ways and the two ranked lists are fused:
- Vector: an exact scan, numpy's dot product of the question's unit vector with every chunk
  vector of the knowledge base. Exact because chatgate keeps knowledge in its
  own database with no separate vector server, and pgvector is not available everywhere it runs
  (SQLite, stock PostgreSQL); an exact scan of 10,000 chunks of 384 dimensions takes a few tens
  of milliseconds (docs/benchmarks.md, "Knowledge retrieval"), and it is never wrong. The
  arithmetic runs in a thread once a scan is big enough to take over a millisecond or two.
  Reading the vectors costs far more than the scan, so each knowledge base's matrix stays in
  memory while its revision holds: its ready documents' count, chunk total and latest update
  (ingestion and deletion each change one of them, in the transaction that writes or removes the
  chunks), with the knowledge base's own embedder, dimension and update time. One cheap query
  per question checks it, so every replica sees a change at its next question.
- Keyword: the database's full-text index (`keyword.py`), which finds what vectors blur: codes,
  names, rare words ("X-7731").
- Fusion: reciprocal rank fusion (k = 60) orders the union of both lists.

`mode` "vector" or "keyword" keeps one list only: for hit testing in the search endpoint and
for bench/retrieval.py, which measures each against the fusion on public documents.

The score of a passage (0..1, compared with the knowledge base's `score_threshold`) is the
cosine of its vector with the question's, computed for keyword hits too (every vector is at hand
in an exact scan). Why not a normalised fusion score: fusion is relative, its best passage
scores the same whether it answers the question or only came least far off, so a threshold on
it could not tell "nothing in here" from "something in here"; the cosine is absolute. Fusion
decides the order and what gets into top_k; the cosine decides what is good enough."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.db import Database
from chatgate.knowledge.embedders import Embedders
from chatgate.knowledge.keyword import RAW_ID, keyword_search, query_words
from chatgate.knowledge.models import ChunkRow, DocumentRow, KnowledgeBaseRow

RRF_K = 60
CANDIDATES = 4  # each list brings this many times top_k (at least MIN_CANDIDATES) to the fusion
MIN_CANDIDATES = 20
THREADED_SCAN = 2_000  # chunks from which the scan runs off the event loop
CACHED_BASES = 16  # knowledge bases whose vectors stay in memory (10,000 chunks of 384: 15 MB)
SearchMode = Literal["hybrid", "vector", "keyword"]
_PASSAGE_COLUMNS = (
    ChunkRow.id, ChunkRow.document_id, ChunkRow.page, ChunkRow.text, ChunkRow.parent_text,
    DocumentRow.name,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved passage; becomes API.md's Citation (the caller adds its 1-based index)."""

    document_id: uuid.UUID
    document_name: str
    chunk_id: uuid.UUID
    page: int | None
    score: float  # 0..1, higher is better: the cosine (module docstring), vs score_threshold
    text: str  # the chunk's text, or its parent's where the knowledge base uses parent-child


@dataclass(frozen=True, slots=True)
class _Vectors:
    """A knowledge base's chunk vectors as read at `revision` (see `Retriever._vectors`)."""

    revision: tuple[Any, ...]
    ids: list[Any]  # raw ids (`RAW_ID`), in the matrix's row order
    position: dict[Any, int]  # raw id -> row
    matrix: np.ndarray[Any, Any]  # (chunks, dimension) float32, read-only

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class _Hit:
    chunk_id: uuid.UUID
    fused: float
    score: float


class Retriever:
    """Searches knowledge bases; a part of the runtime (needs the Database and Embedders)."""

    def __init__(self, *, database: Database, embedders: Embedders) -> None:
        self._database = database
        self._embedders = embedders
        self._cache: OrderedDict[str, _Vectors] = OrderedDict()  # least recently used first

    async def retrieve(
        self,
        kb_ids: Sequence[str],
        query: str,
        *,
        top_k: int | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[Passage]:
        """Best passages across these knowledge bases (unknown ids skipped), each KB's top_k
        and score_threshold applied, best first; [] when nothing is above the threshold.
        `top_k` replaces each knowledge base's own and caps the total; unset, the total is
        capped by the largest top_k among them."""
        if not query.strip() or not kb_ids:
            return []
        async with self._database.session() as db:
            found = await db.scalars(
                select(KnowledgeBaseRow).where(KnowledgeBaseRow.id.in_(set(kb_ids)))
            )
            bases = list(found.all())
        if not bases:
            return []
        words = await asyncio.to_thread(query_words, query)  # jieba: off the loop
        questions: dict[str, np.ndarray[Any, Any]] = {}
        hits: list[_Hit] = []
        for kb in sorted(bases, key=lambda b: b.id):
            if kb.embedder not in questions:
                vector = await self._embedders.get(kb.embedder).embed_query(query)
                questions[kb.embedder] = np.asarray(vector, dtype=np.float32)
            limit = top_k or kb.top_k
            found_hits = await self._search(kb, questions[kb.embedder], words, limit, mode)
            hits.extend(h for h in found_hits if h.score >= kb.score_threshold)
        cap = top_k or max(kb.top_k for kb in bases)
        return await self._passages(sorted(hits, key=lambda h: -h.fused), cap)

    async def _search(
        self,
        kb: KnowledgeBaseRow,
        question: np.ndarray[Any, Any],
        words: list[str],
        limit: int,
        mode: SearchMode,
    ) -> list[_Hit]:
        """This knowledge base's best `limit` chunks, by fused rank (threshold not applied)."""
        pool = max(limit * CANDIDATES, MIN_CANDIDATES)
        async with self._database.session() as db:
            vectors = await self._vectors(db, kb)
            if vectors.count == 0:
                return []
            keyword_ids = (
                await keyword_search(db, kb_id=kb.id, words=words, limit=pool)
                if mode != "vector"
                else []
            )
        if vectors.count >= THREADED_SCAN:
            cosines, order = await asyncio.to_thread(_scan, vectors.matrix, question, pool)
        else:
            cosines, order = _scan(vectors.matrix, question, pool)
        fused: dict[int, float] = {}
        for rank, i in enumerate(order.tolist() if mode != "keyword" else [], start=1):
            fused[i] = fused.get(i, 0.0) + 1 / (RRF_K + rank)
        for rank, chunk_id in enumerate(keyword_ids, start=1):
            i = vectors.position.get(chunk_id, -1)
            if i >= 0:  # a chunk written between the two reads waits for the next question
                fused[i] = fused.get(i, 0.0) + 1 / (RRF_K + rank)
        best = sorted(fused.items(), key=lambda item: (-item[1], -cosines[item[0]]))[:limit]
        ids = vectors.ids
        return [_Hit(_uuid(ids[i]), f, min(1.0, max(0.0, float(cosines[i])))) for i, f in best]

    async def _vectors(self, db: AsyncSession, kb: KnowledgeBaseRow) -> _Vectors:
        """The knowledge base's vectors: from memory while its revision is unchanged, else read
        (and kept). Read before the vectors, so a change in between only costs a re-read."""
        summary = (
            await db.execute(
                select(
                    func.count(), func.coalesce(func.sum(DocumentRow.chunk_count), 0),
                    func.max(DocumentRow.updated_at),
                ).where(DocumentRow.kb_id == kb.id, DocumentRow.status == "ready")
            )
        ).one()  # fmt: skip
        revision = (kb.embedder, kb.dimension, kb.updated_at, *summary)
        kept = self._cache.get(kb.id)
        if kept is not None and kept.revision == revision:
            self._cache.move_to_end(kb.id)
            return kept
        rows = (
            await db.execute(select(RAW_ID, ChunkRow.embedding).where(ChunkRow.kb_id == kb.id))
        ).all()
        ids = [row[0] for row in rows]
        blob = b"".join(row[1] for row in rows)
        matrix = np.frombuffer(blob, dtype="<f4").reshape(len(rows), -1 if rows else 0)
        vectors = _Vectors(revision, ids, {chunk_id: i for i, chunk_id in enumerate(ids)}, matrix)
        self._cache[kb.id] = vectors
        self._cache.move_to_end(kb.id)
        while len(self._cache) > CACHED_BASES:
            self._cache.popitem(last=False)
        return vectors

    async def _passages(self, hits: list[_Hit], cap: int) -> list[Passage]:
        """The hits as passages, best first; children of one parent give it once."""
        if not hits:
            return []
        async with self._database.session() as db:
            rows = await db.execute(
                select(*_PASSAGE_COLUMNS)
                .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                .where(ChunkRow.id.in_([h.chunk_id for h in hits]))
            )
            by_id = {row.id: row for row in rows}
        passages: list[Passage] = []
        seen: set[tuple[uuid.UUID, str]] = set()
        for hit in hits:
            row = by_id.get(hit.chunk_id)
            if row is None:  # deleted since the search
                continue
            text = row.parent_text or row.text
            if (row.document_id, text) in seen:
                continue
            seen.add((row.document_id, text))
            passage = Passage(
                document_id=row.document_id, document_name=row.name, chunk_id=row.id,
                page=row.page, score=round(hit.score, 4), text=text,
            )  # fmt: skip
            passages.append(passage)
            if len(passages) == cap:
                break
        return passages


def _uuid(raw: Any) -> uuid.UUID:
    return raw if type(raw) is uuid.UUID else uuid.UUID(str(raw))


def _scan(
    matrix: np.ndarray[Any, Any], question: np.ndarray[Any, Any], pool: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Every chunk's cosine with the question, and the indexes of the best `pool`, best first."""
    count = matrix.shape[0]
    cosines = matrix @ question
    top = np.argpartition(-cosines, pool)[:pool] if count > pool else np.arange(count)
    return cosines, top[np.argsort(-cosines[top], kind="stable")]
