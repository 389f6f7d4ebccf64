"""An assistant's own `stream_on_disconnect` (NULL: the global setting).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assistants") as batch_op:
        batch_op.add_column(sa.Column("stream_on_disconnect", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assistants") as batch_op:
        batch_op.drop_column("stream_on_disconnect")
