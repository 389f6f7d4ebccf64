"""knowledge_chunks.search_vector: the keyword index's tsvector, stored (PostgreSQL only)

Revision ID: 0012
Revises: 0011

0010's expression index found the matching rows, but ranking them recomputed
`to_tsvector` for every match: most of a question's time on a large knowledge base
(docs/benchmarks.md, "Knowledge retrieval"). A stored generated column is computed once, when the
chunk is written, by the database itself, so no writer needs to know of it; the GIN index moves
onto it. SQLite's FTS5 table already stores its index: nothing changes there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        "ALTER TABLE knowledge_chunks ADD COLUMN search_vector tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, search_text)) STORED"
    )
    op.execute(
        "CREATE INDEX ix_knowledge_chunks_search_vector ON knowledge_chunks "
        "USING gin (search_vector)"
    )
    op.execute("DROP INDEX IF EXISTS ix_knowledge_chunks_search")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        "CREATE INDEX ix_knowledge_chunks_search ON knowledge_chunks "
        "USING gin (to_tsvector('simple'::regconfig, search_text))"
    )
    op.execute("DROP INDEX IF EXISTS ix_knowledge_chunks_search_vector")
    op.execute("ALTER TABLE knowledge_chunks DROP COLUMN search_vector")
