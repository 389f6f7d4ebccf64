"""The knowledge API's shapes (API.md, "Knowledge bases")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from chatgate.core.config import ID_PATTERN
from chatgate.core.text import UnicodeText
from chatgate.knowledge.models import DocumentRow, DocumentStatus, KnowledgeBaseRow
from chatgate.knowledge.retrieval import Passage, SearchMode

Name = Annotated[UnicodeText, Field(min_length=1, max_length=200)]
ChunkSize = Annotated[int, Field(ge=16, le=8192, description="tokens of the embedder")]
Overlap = Annotated[int, Field(ge=0, le=4096, description="tokens of whole sentences repeated")]
ParentSize = Annotated[
    int, Field(ge=32, le=32768, description="parent-child: the parent's size; unset = none")
]
TopK = Annotated[int, Field(ge=1, le=100)]
Threshold = Annotated[float, Field(ge=0, le=1)]


class KnowledgeBaseCreate(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    name: Name
    description: UnicodeText = ""
    chunk_size: ChunkSize | None = Field(None, description="unset: CHATGATE_KNOWLEDGE__CHUNK_SIZE")
    chunk_overlap: Overlap | None = None
    parent_chunk_size: ParentSize | None = None
    top_k: TopK | None = None
    score_threshold: Threshold | None = Field(
        None, description="unset: the embedder's own (0.82 for the bundled one)"
    )
    embedder: str | None = Field(None, description="a configured embedder's id; unset: default")


class KnowledgeBaseUpdate(BaseModel):
    """Chunk sizes apply to documents uploaded after the change; a new embedder re-embeds
    every document (with the chunk sizes of then)."""

    name: Name | None = None
    description: UnicodeText | None = None
    chunk_size: ChunkSize | None = None
    chunk_overlap: Overlap | None = None
    parent_chunk_size: ParentSize | None = None
    top_k: TopK | None = None
    score_threshold: Threshold | None = None
    embedder: str | None = Field(
        None, description="another configured embedder: every document is embedded again"
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> KnowledgeBaseUpdate:
        # parent_chunk_size may be null (parents off); the others may only be left out.
        for name in self.model_fields_set - {"parent_chunk_size"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class KnowledgeBaseOut(BaseModel):
    id: str
    name: str
    description: str
    document_count: int
    chunk_size: int
    chunk_overlap: int
    parent_chunk_size: int | None
    top_k: int
    score_threshold: float
    embedder: str
    dimension: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: KnowledgeBaseRow, document_count: int) -> KnowledgeBaseOut:
        fields = {f: getattr(row, f) for f in cls.model_fields if f != "document_count"}
        return cls(**fields, document_count=document_count)


class KnowledgeBaseList(BaseModel):
    data: list[KnowledgeBaseOut]


class DocumentError(BaseModel):
    code: str
    message: str


class DocumentOut(BaseModel):
    id: uuid.UUID
    kb_id: str
    name: str
    status: DocumentStatus
    progress: float = Field(description="0 to 1 while processing")
    chunk_count: int
    page_count: int | None
    media_type: str
    size: int
    sha256: str
    error: DocumentError | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: DocumentRow) -> DocumentOut:
        fields: dict[str, Any] = {f: getattr(row, f) for f in cls.model_fields}
        return cls.model_validate(fields)


class DocumentList(BaseModel):
    data: list[DocumentOut]


class SearchRequest(BaseModel):
    query: Annotated[UnicodeText, Field(min_length=1, max_length=4000)]
    top_k: TopK | None = Field(None, description="unset: the knowledge base's top_k")
    mode: SearchMode = Field(
        "hybrid",
        description="hybrid (what assistants use), or one side of it alone to see what each "
        "finds: vector similarity or keyword (full-text) search",
    )


class Citation(BaseModel):
    index: int = Field(ge=1, description="1-based, in the order retrieved (best first)")
    document_id: uuid.UUID
    document_name: str
    chunk_id: uuid.UUID
    page: int | None = None
    score: float = Field(ge=0, le=1)
    text: str

    @classmethod
    def of(cls, index: int, passage: Passage) -> Citation:
        fields = {f: getattr(passage, f) for f in cls.model_fields if f != "index"}
        return cls(index=index, **fields)


class CitationList(BaseModel):
    data: list[Citation]
