"""assistant policies: fallbacks, canned answer, cache, guards

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assistants") as batch_op:
        batch_op.add_column(
            sa.Column("fallback_providers", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("fallback_answer", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("cache_answers", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("guards", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("assistants") as batch_op:
        for column in ("guards", "cache_answers", "fallback_answer", "fallback_providers"):
            batch_op.drop_column(column)
