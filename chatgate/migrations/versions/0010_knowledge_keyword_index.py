"""the keyword index of knowledge chunks: FTS5 on SQLite, a GIN tsvector index on PostgreSQL

Revision ID: 0010
Revises: 0009

SQLite: `knowledge_chunks_fts` holds each chunk's `search_text` (already segmented: words split by
spaces) under the chunk's rowid, with its id and knowledge base beside it, unindexed. Triggers
keep it in step with `knowledge_chunks` on insert and delete (chunks are never updated), so every
writer (ingestion, deletes, restore) keeps it right without knowing of it. The delete trigger
also checks the id, so a rowid that a VACUUM renumbered can never drop another chunk's entry.
PostgreSQL: an expression index over `to_tsvector('simple', search_text)`: 'simple' since the
text is already segmented and mixes languages (no stemming, no stop words).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5("
            "search_text, chunk_id UNINDEXED, kb_id UNINDEXED, tokenize = 'unicode61')"
        )
        op.execute(
            "INSERT INTO knowledge_chunks_fts (rowid, search_text, chunk_id, kb_id) "
            "SELECT rowid, search_text, id, kb_id FROM knowledge_chunks"
        )
        op.execute(
            "CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN "
            "INSERT INTO knowledge_chunks_fts (rowid, search_text, chunk_id, kb_id) "
            "VALUES (new.rowid, new.search_text, new.id, new.kb_id); END"
        )
        op.execute(
            "CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN "
            "DELETE FROM knowledge_chunks_fts WHERE rowid = old.rowid AND chunk_id = old.id; END"
        )
    else:
        op.execute(
            "CREATE INDEX ix_knowledge_chunks_search ON knowledge_chunks "
            "USING gin (to_tsvector('simple'::regconfig, search_text))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS knowledge_chunks_fts_insert")
        op.execute("DROP TABLE IF EXISTS knowledge_chunks_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_knowledge_chunks_search")
