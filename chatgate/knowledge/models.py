"""Knowledge bases, their documents, and the documents' chunks with vectors and keyword text."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.core.db import Base, UTCDateTime
from chatgate.core.ids import new_id
from chatgate.core.time import utcnow

# `processing` from upload until its chunks are written (or it fails), all in one transaction.
DocumentStatus = Literal["processing", "ready", "failed"]


class KnowledgeBaseRow(Base):
    __tablename__ = "knowledge_bases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    chunk_size: Mapped[int] = mapped_column(Integer, default=500)
    chunk_overlap: Mapped[int] = mapped_column(Integer, default=50)
    # Parent-child: chunks of `chunk_size` are matched, their parent of this size is what the
    # engine reads. None: no parents.
    parent_chunk_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    top_k: Mapped[int] = mapped_column(Integer, default=5)
    score_threshold: Mapped[float] = mapped_column(Float, default=0.0)
    # Recorded at creation: vectors of another model or size cannot be compared with these.
    embedder: Mapped[str] = mapped_column(String(255))
    dimension: Mapped[int] = mapped_column(Integer)  # 0 until the embedder's first answer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentRow(Base):
    __tablename__ = "knowledge_documents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("knowledge_bases.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[DocumentStatus] = mapped_column(String(16), default="processing")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    page_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The uploaded file, kept so a worker in another process can read it and a change of
    # embedder or chunk size can re-index it; never loaded with the row (`deferred`).
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("kb_id", "sha256"),
        Index("ix_knowledge_documents_kb_created", "kb_id", "created_at"),
    )


class ChunkRow(Base):
    __tablename__ = "knowledge_chunks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kb_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("knowledge_documents.id", ondelete="CASCADE")
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_count: Mapped[int] = mapped_column(Integer)
    parent_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Little-endian float32, unit length (knowledge/embedders.py: `vector_bytes`).
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    # The text as the keyword index reads it: Chinese segmented, words separated by spaces.
    search_text: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_knowledge_chunks_document_ordinal", "document_id", "ordinal"),)
