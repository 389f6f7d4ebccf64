"""Encryption at rest: each user's wrapped data key (`data_keys`); session titles and message
citations become text, to hold sealed values (`cg1:…`) longer than a title and not JSON.
Values already stored stay readable as they are; `chatgate rotate-keys` seals them.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("owner", sa.String(255), primary_key=True),
        sa.Column("ref", sa.String(32), nullable=False, unique=True),
        sa.Column("kek_id", sa.String(32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps any text in either column; rebuilding the tables would only cost
    op.alter_column("sessions", "title", type_=sa.Text(), existing_type=sa.String(200))
    op.alter_column(
        "messages", "citations", type_=sa.Text(), existing_type=sa.JSON(),
        postgresql_using="citations::text",
    )  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "messages", "citations", type_=sa.JSON(), existing_type=sa.Text(),
            postgresql_using="citations::json",
        )  # fmt: skip
        op.alter_column("sessions", "title", type_=sa.String(200), existing_type=sa.Text())
    op.drop_table("data_keys")
