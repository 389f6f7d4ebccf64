"""Ingestion: an uploaded document to chunks with vectors, off the event loop.

Parsing, chunking and keyword segmentation run in a thread; vectors come from the knowledge
base's embedder in batches, the document's progress saved after each. The chunks are written in
the same transaction that marks the document `ready`: a failure at any step leaves it `failed`
with an error, never half-indexed. With Redis, a queue worker does this (`chatgate worker`);
without, a task of this process."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.sql import ColumnElement

from chatgate.core.config import KnowledgeSettings
from chatgate.core.db import Database
from chatgate.core.errors import AppError, ServiceUnavailable
from chatgate.core.time import utcnow
from chatgate.knowledge.chunking import Chunk, chunk_pages, keyword_text
from chatgate.knowledge.embedders import Embedder, Embedders, UnknownEmbedder, vector_bytes
from chatgate.knowledge.models import ChunkRow, DocumentRow, DocumentStatus, KnowledgeBaseRow
from chatgate.knowledge.parsing import MediaType, ParseError, parse
from chatgate.tasks.queue import QueuedIngestion, TaskQueue

log = logging.getLogger("chatgate.knowledge")
# A document whose progress has not moved for this long has no process working on it.
STALE_AFTER = timedelta(minutes=15)
PARSED = 0.1  # the share of the progress that parsing and chunking stand for


@dataclass(frozen=True, slots=True)
class _Job:
    document_id: uuid.UUID
    kb_id: str
    media_type: MediaType
    content: bytes
    chunk_size: int
    chunk_overlap: int
    parent_chunk_size: int | None
    embedder: str
    dimension: int


@dataclass(frozen=True, slots=True)
class _Prepared:
    chunks: list[Chunk]
    search_texts: list[str]
    page_count: int | None


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Ingestion:
    """Runs ingestions: `submit` hands a new document to a queue worker, or to a task here."""

    def __init__(
        self,
        *,
        database: Database,
        embedders: Embedders,
        settings: KnowledgeSettings,
        queue: TaskQueue | None = None,
    ) -> None:
        self._database = database
        self._embedders = embedders
        self._settings = settings
        self._queue = queue
        self._tasks: set[asyncio.Task[Any]] = set()

    async def submit(self, document_id: uuid.UUID) -> None:
        if self._queue is not None:
            try:
                await self._queue.enqueue_ingestion(QueuedIngestion(document_id=document_id))
                return
            except ServiceUnavailable:
                log.warning("ingesting %s in this process: the queue is unavailable", document_id)
        task = asyncio.create_task(self.run(document_id), name=f"ingest-{document_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stops this process's ingestions; their documents stay `processing` until the next
        start marks them interrupted (`recover_interrupted_ingestions`)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run(self, document_id: uuid.UUID) -> DocumentStatus | None:
        """Ingests one document still `processing`; None when there is none (deleted, or
        already done by another try)."""
        job = await self._load(document_id)
        if job is None:
            return None
        try:
            embedder = self._embedders.get(job.embedder)
            prepared = await asyncio.to_thread(self._prepare, job, embedder)
            await self._progress(document_id, PARSED)
            vectors = await self._embed(document_id, embedder, prepared.chunks)
            return await self._finish(job, prepared, vectors)
        except ParseError as exc:
            return await self._fail(document_id, exc.code, exc.message)
        except UnknownEmbedder as exc:
            return await self._fail(document_id, exc.code, exc.message)
        except AppError as exc:
            log.warning("embedding %s failed: %s", document_id, exc.message)
            return await self._fail(document_id, "embedding_failed", exc.message)
        except Exception:
            log.exception("ingesting %s failed", document_id)
            return await self._fail(
                document_id, "ingestion_failed", "the document could not be indexed"
            )

    async def _load(self, document_id: uuid.UUID) -> _Job | None:
        async with self._database.session() as db:
            found = (
                await db.execute(
                    select(DocumentRow.kb_id, DocumentRow.media_type, DocumentRow.content).where(
                        DocumentRow.id == document_id, DocumentRow.status == "processing"
                    )
                )
            ).first()
            if found is None:
                return None
            kb = await db.get(KnowledgeBaseRow, found.kb_id)
        if kb is None:
            return None
        return _Job(
            document_id=document_id, kb_id=kb.id, media_type=found.media_type,
            content=found.content, chunk_size=kb.chunk_size, chunk_overlap=kb.chunk_overlap,
            parent_chunk_size=kb.parent_chunk_size, embedder=kb.embedder, dimension=kb.dimension,
        )  # fmt: skip

    @staticmethod
    def _prepare(job: _Job, embedder: Embedder) -> _Prepared:
        """In a thread: parse, chunk and segment for the keyword index."""
        parsed = parse(job.content, job.media_type)
        chunks = chunk_pages(
            parsed.pages, size=job.chunk_size, overlap=job.chunk_overlap,
            count_tokens=embedder.count_tokens, parent_size=job.parent_chunk_size,
        )  # fmt: skip
        if not chunks:
            raise ParseError("empty_document", "the document holds no text")
        return _Prepared(chunks, [keyword_text(c.text) for c in chunks], parsed.page_count)

    async def _embed(
        self, document_id: uuid.UUID, embedder: Embedder, chunks: list[Chunk]
    ) -> list[list[float]]:
        vectors: list[list[float]] = []
        batch = self._settings.embed_batch
        for start in range(0, len(chunks), batch):
            texts = [c.text for c in chunks[start : start + batch]]
            vectors.extend(await embedder.embed_documents(texts))
            done = len(vectors) / len(chunks)
            await self._progress(document_id, PARSED + (0.99 - PARSED) * done)
        return vectors

    async def _finish(
        self, job: _Job, prepared: _Prepared, vectors: list[list[float]]
    ) -> DocumentStatus | None:
        dimension = len(vectors[0])
        if job.dimension and dimension != job.dimension:
            return await self._fail(
                job.document_id, "dimension_mismatch",
                f"the embedder gave {dimension} dimensions; this knowledge base holds "
                f"{job.dimension}",
            )  # fmt: skip
        rows = [
            _chunk_row(job, ordinal, chunk, search_text, vector)
            for ordinal, (chunk, search_text, vector) in enumerate(
                zip(prepared.chunks, prepared.search_texts, vectors, strict=True)
            )
        ]
        async with self._database.session() as db:
            marked = await db.execute(
                update(DocumentRow)
                .where(DocumentRow.id == job.document_id, DocumentRow.status == "processing")
                .values(
                    status="ready",
                    progress=1.0,
                    error=None,
                    chunk_count=len(rows),
                    page_count=prepared.page_count,
                    updated_at=utcnow(),
                )
            )
            embedder_now = await db.scalar(
                select(KnowledgeBaseRow.embedder).where(KnowledgeBaseRow.id == job.kb_id)
            )
            if not marked.rowcount or embedder_now != job.embedder:  # type: ignore[attr-defined]
                # Deleted meanwhile, ended by another try, or the knowledge base changed its
                # embedder (the try that re-embeds writes the chunks).
                await db.rollback()
                return None
            if not job.dimension:  # the first vectors of an embedder that learns its size
                await db.execute(
                    update(KnowledgeBaseRow)
                    .where(KnowledgeBaseRow.id == job.kb_id, KnowledgeBaseRow.dimension == 0)
                    .values(dimension=dimension)
                )
            await db.execute(insert(ChunkRow), rows)
            await db.commit()
        return "ready"

    async def _progress(self, document_id: uuid.UUID, progress: float) -> None:
        await _set(self._database, _processing(document_id), progress=round(progress, 3))

    async def _fail(self, document_id: uuid.UUID, code: str, message: str) -> DocumentStatus:
        error = {"code": code, "message": message}
        await _set(self._database, _processing(document_id), status="failed", error=error)
        return "failed"


def _chunk_row(
    job: _Job, ordinal: int, chunk: Chunk, search_text: str, vector: list[float]
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "kb_id": job.kb_id, "document_id": job.document_id,
        "ordinal": ordinal, "text": chunk.text, "page": chunk.page,
        "token_count": chunk.token_count, "parent_text": chunk.parent_text,
        "embedding": vector_bytes(vector), "search_text": search_text,
    }  # fmt: skip


def _processing(document_id: uuid.UUID) -> ColumnElement[bool]:
    return (DocumentRow.id == document_id) & (DocumentRow.status == "processing")


async def _set(database: Database, condition: ColumnElement[bool], **values: Any) -> int:
    async with database.session() as db:
        result = await db.execute(
            update(DocumentRow).where(condition).values(**values, updated_at=utcnow())
        )
        await db.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def recover_interrupted_ingestions(database: Database, *, all_rows: bool) -> int:
    """Marks documents left `processing` by a process that died as failed with
    `ingestion_interrupted`: all of them where one embedded process owns every ingestion, else
    only those whose progress has not moved for `STALE_AFTER` (a worker may be on the others)."""
    condition: ColumnElement[bool] = DocumentRow.status == "processing"
    if not all_rows:
        condition &= DocumentRow.updated_at < utcnow() - STALE_AFTER
    error = {
        "code": "ingestion_interrupted",
        "message": "the process indexing this document ended; upload it again",
    }
    return await _set(database, condition, status="failed", error=error)
