"""Keyword search over chunks' `search_text`: SQLite's FTS5 ranked by bm25(), PostgreSQL's full
text ranked by ts_rank_cd (migration 0010 builds both indexes).

The question is segmented with the same `keyword_text` as the chunks, and its words are ORed:
any shared word makes a candidate, the rank says how good. Each word is passed as a quoted FTS5
string (or its own `plainto_tsquery`), so what a user types (`"`, `*`, `AND`, `NEAR`, `:`) is
only ever a word, never query syntax."""

from __future__ import annotations

from functools import reduce
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, literal_column, select, text, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import NullType

from chatgate.knowledge.chunking import keyword_text
from chatgate.knowledge.models import ChunkRow

MAX_WORDS = 64  # a pasted page as a question still makes a bounded query
# A constant, not a parameter, so the planner matches the GIN index's expression.
_SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")
_FTS5 = text(
    "SELECT chunk_id FROM knowledge_chunks_fts WHERE knowledge_chunks_fts MATCH :match "
    "AND kb_id = :kb_id ORDER BY bm25(knowledge_chunks_fts) LIMIT :limit"
)
# A chunk id as the driver returns it (SQLite: hex text; asyncpg: its UUID), not made into a
# uuid.UUID: that conversion was most of the time of loading 10,000 vectors.
RAW_ID: ColumnElement[Any] = type_coerce(ChunkRow.id, NullType())


def query_words(query: str) -> list[str]:
    """The question's distinct words, in order, as the index spells them."""
    seen: dict[str, None] = {}
    for word in keyword_text(query).split():
        seen.setdefault(word.lower(), None)
    return list(seen)[:MAX_WORDS]


def fts5_match(words: list[str]) -> str:
    """An FTS5 query matching any of these words, each a quoted string (`"` doubled)."""
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words)


async def keyword_search(
    db: AsyncSession, *, kb_id: str, words: list[str], limit: int
) -> list[Any]:
    """Raw ids (`RAW_ID`) of this knowledge base's chunks sharing a word with the question,
    best first."""
    if not words:
        return []
    if db.get_bind().dialect.name == "sqlite":
        rows = await db.execute(_FTS5, {"match": fts5_match(words), "kb_id": kb_id, "limit": limit})
        return [row[0] for row in rows]
    query: ColumnElement[object] = reduce(
        lambda a, b: a.op("||")(b),
        [func.plainto_tsquery(_SIMPLE, bindparam(f"w{i}", w)) for i, w in enumerate(words)],
    )
    vector = func.to_tsvector(_SIMPLE, ChunkRow.search_text)
    ranked = await db.execute(
        select(RAW_ID)
        .where(ChunkRow.kb_id == kb_id, vector.op("@@")(query))
        .order_by(func.ts_rank_cd(vector, query).desc(), ChunkRow.id)
        .limit(limit)
    )
    return list(ranked.scalars())
