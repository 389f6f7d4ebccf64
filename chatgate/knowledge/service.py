"""Knowledge bases and their documents: what admins create, change and delete. Ingestion is
`ingest.py`'s; this hands it each new document."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from chatgate.audit.service import record_audit_event
from chatgate.auth.service import User
from chatgate.core.config import KnowledgeSettings
from chatgate.core.db import Database
from chatgate.core.errors import AppError, Conflict, NotFound
from chatgate.core.time import utcnow
from chatgate.knowledge.embedders import Embedders
from chatgate.knowledge.ingest import Ingestion, sha256_of
from chatgate.knowledge.models import ChunkRow, DocumentRow, KnowledgeBaseRow
from chatgate.knowledge.parsing import MediaType
from chatgate.knowledge.schemas import KnowledgeBaseCreate, KnowledgeBaseUpdate


def kb_not_found(kb_id: str) -> NotFound:
    return NotFound(f"knowledge base {kb_id!r} does not exist", code="kb_not_found")


def document_not_found(document_id: uuid.UUID) -> NotFound:
    return NotFound(f"document {document_id} does not exist", code="document_not_found")


def _invalid(message: str) -> AppError:
    return AppError(message, code="invalid_knowledge_base", status=422)


class Knowledge:
    def __init__(
        self,
        *,
        database: Database,
        embedders: Embedders,
        ingestion: Ingestion,
        settings: KnowledgeSettings,
    ) -> None:
        self._database = database
        self._embedders = embedders
        self._ingestion = ingestion
        self.settings = settings

    async def bases(self) -> list[tuple[KnowledgeBaseRow, int]]:
        counts = (
            select(DocumentRow.kb_id, func.count().label("n"))
            .group_by(DocumentRow.kb_id)
            .subquery()
        )
        async with self._database.session() as db:
            rows = await db.execute(
                select(KnowledgeBaseRow, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.kb_id == KnowledgeBaseRow.id)
                .order_by(KnowledgeBaseRow.id)
            )
            return [(kb, int(n)) for kb, n in rows.all()]

    async def base(self, kb_id: str) -> tuple[KnowledgeBaseRow, int]:
        async with self._database.session() as db:
            kb = await db.get(KnowledgeBaseRow, kb_id)
            if kb is None:
                raise kb_not_found(kb_id)
            count = await db.scalar(
                select(func.count()).select_from(DocumentRow).where(DocumentRow.kb_id == kb_id)
            )
        return kb, int(count or 0)

    async def create_base(self, *, user: User, spec: KnowledgeBaseCreate) -> KnowledgeBaseRow:
        embedder = self._embedders.get(spec.embedder)
        defaults = self.settings
        size = spec.chunk_size or defaults.chunk_size
        overlap = defaults.chunk_overlap if spec.chunk_overlap is None else spec.chunk_overlap
        if spec.chunk_size is not None and spec.chunk_overlap is None:
            overlap = min(overlap, size // 10)  # the default's share, not more than the size
        self._check_sizes(size, overlap, spec.parent_chunk_size)
        now = utcnow()
        row = KnowledgeBaseRow(
            id=spec.id, name=spec.name, description=spec.description, chunk_size=size,
            chunk_overlap=overlap, parent_chunk_size=spec.parent_chunk_size,
            top_k=spec.top_k or defaults.top_k,
            score_threshold=(
                embedder.score_threshold if spec.score_threshold is None else spec.score_threshold
            ),
            embedder=embedder.id, dimension=embedder.dimension, created_at=now, updated_at=now,
        )  # fmt: skip
        async with self._database.session() as db:
            if await db.get(KnowledgeBaseRow, spec.id) is not None:
                raise Conflict(f"knowledge base {spec.id!r} already exists", code="kb_exists")
            db.add(row)
            details = spec.model_dump(exclude={"id"}) | {"embedder": embedder.id}
            self._audit(db, user, "knowledge_base.created", spec.id, details)
            try:
                await db.commit()
            except IntegrityError:  # created by another request at the same moment
                raise Conflict(
                    f"knowledge base {spec.id!r} already exists", code="kb_exists"
                ) from None
        return row

    async def update_base(
        self, *, user: User, kb_id: str, changes: KnowledgeBaseUpdate
    ) -> KnowledgeBaseRow:
        """Applies the changes; a new embedder re-embeds every document (each `processing`
        until its new vectors are in, the old ones gone at once: vectors of two models cannot
        be compared) and, unless a threshold is given, takes the embedder's own threshold."""
        values = changes.model_dump(exclude_unset=True)
        if "embedder" in values:
            embedder = self._embedders.get(values["embedder"])
            values["embedder"] = embedder.id
        reembed: list[uuid.UUID] = []
        async with self._database.session() as db:
            kb = await db.get(KnowledgeBaseRow, kb_id)
            if kb is None:
                raise kb_not_found(kb_id)
            merged = {k: values.get(k, getattr(kb, k)) for k in ("chunk_size", "chunk_overlap")}
            parent = values.get("parent_chunk_size", kb.parent_chunk_size)
            self._check_sizes(merged["chunk_size"], merged["chunk_overlap"], parent)
            if values.get("embedder", kb.embedder) != kb.embedder:
                values["dimension"] = embedder.dimension
                values.setdefault("score_threshold", embedder.score_threshold)
                reembed = await self._reset_documents(db, kb_id)
            changed = {k: v for k, v in values.items() if getattr(kb, k) != v}
            if changed:
                before = {k: getattr(kb, k) for k in changed}
                for key, value in changed.items():
                    setattr(kb, key, value)
                kb.updated_at = utcnow()
                details = {k: {"from": before[k], "to": v} for k, v in changed.items()}
                self._audit(db, user, "knowledge_base.updated", kb_id, {"changes": details})
                await db.commit()
        for document_id in reembed:
            await self._ingestion.submit(document_id)
        return kb

    @staticmethod
    async def _reset_documents(db: Any, kb_id: str) -> list[uuid.UUID]:
        """Drops the knowledge base's chunks and sets its documents to be ingested again."""
        await db.execute(delete(ChunkRow).where(ChunkRow.kb_id == kb_id))
        reset = await db.execute(
            update(DocumentRow)
            .where(DocumentRow.kb_id == kb_id)
            .values(status="processing", progress=0.0, chunk_count=0, error=None,
                    updated_at=utcnow())
            .returning(DocumentRow.id)
        )  # fmt: skip
        return list(reset.scalars())

    async def delete_base(self, *, user: User, kb_id: str) -> None:
        async with self._database.session() as db:
            kb = await db.get(KnowledgeBaseRow, kb_id)
            if kb is None:
                raise kb_not_found(kb_id)
            # The foreign keys cascade too; deleting explicitly does not depend on them
            # (SQLite enforces them only with its pragma on).
            await db.execute(delete(ChunkRow).where(ChunkRow.kb_id == kb_id))
            await db.execute(delete(DocumentRow).where(DocumentRow.kb_id == kb_id))
            await db.delete(kb)
            self._audit(db, user, "knowledge_base.deleted", kb_id, {"name": kb.name})
            await db.commit()

    async def add_document(
        self, *, user: User, kb_id: str, name: str, media_type: MediaType, content: bytes
    ) -> tuple[DocumentRow, bool]:
        """The new document, `processing`, and True; or the one already holding the same bytes
        and False. A failed one with the same bytes is replaced: uploading again retries."""
        await self.base(kb_id)
        sha256 = await asyncio.to_thread(sha256_of, content)
        async with self._database.session() as db:
            existing = await self._same_bytes(db, kb_id, sha256)
            if existing is not None and existing.status != "failed":
                return existing, False
            if existing is not None:
                await db.delete(existing)
                await db.flush()
            now = utcnow()
            document = DocumentRow(
                id=uuid.uuid4(), kb_id=kb_id, name=name[:255], sha256=sha256,
                media_type=media_type, size=len(content), status="processing", progress=0.0,
                chunk_count=0, content=content, created_at=now, updated_at=now,
            )  # fmt: skip
            db.add(document)
            details = {"kb_id": kb_id, "name": name, "size": len(content), "sha256": sha256}
            self._audit(db, user, "knowledge_document.uploaded", str(document.id), details)
            try:
                await db.commit()
            except IntegrityError:  # the same bytes uploaded by another request meanwhile
                await db.rollback()
                existing = await self._same_bytes(db, kb_id, sha256)
                if existing is None:
                    raise
                return existing, False
        await self._ingestion.submit(document.id)
        return document, True

    async def documents(self, kb_id: str) -> list[DocumentRow]:
        await self.base(kb_id)
        async with self._database.session() as db:
            rows = await db.scalars(
                select(DocumentRow)
                .where(DocumentRow.kb_id == kb_id)
                .order_by(DocumentRow.created_at, DocumentRow.id)
            )
            return list(rows.all())

    async def document(self, kb_id: str, document_id: uuid.UUID) -> DocumentRow:
        async with self._database.session() as db:
            document = await db.get(DocumentRow, document_id)
        if document is None or document.kb_id != kb_id:
            await self.base(kb_id)  # an unknown knowledge base is that, first
            raise document_not_found(document_id)
        return document

    async def delete_document(self, *, user: User, kb_id: str, document_id: uuid.UUID) -> None:
        document = await self.document(kb_id, document_id)
        async with self._database.session() as db:
            await db.execute(delete(ChunkRow).where(ChunkRow.document_id == document_id))
            await db.execute(delete(DocumentRow).where(DocumentRow.id == document_id))
            details = {"kb_id": kb_id, "name": document.name}
            self._audit(db, user, "knowledge_document.deleted", str(document_id), details)
            await db.commit()

    @staticmethod
    async def _same_bytes(db: Any, kb_id: str, sha256: str) -> DocumentRow | None:
        found: DocumentRow | None = await db.scalar(
            select(DocumentRow).where(DocumentRow.kb_id == kb_id, DocumentRow.sha256 == sha256)
        )
        return found

    @staticmethod
    def _check_sizes(size: int, overlap: int, parent: int | None) -> None:
        if overlap >= size:
            raise _invalid(f"chunk_overlap ({overlap}) must be below chunk_size ({size})")
        if parent is not None and parent <= size:
            raise _invalid(f"parent_chunk_size ({parent}) must be above chunk_size ({size})")

    @staticmethod
    def _audit(db: Any, user: User, action: str, target_id: str, details: dict[str, Any]) -> None:
        target_type = "knowledge_base" if action.startswith("knowledge_base") else "document"
        record_audit_event(
            db, action=action, user_id=user.id, target_type=target_type, target_id=target_id,
            details=details,
        )  # fmt: skip
