"""At most one answer being written per session, enforced by the database, so that two chatgate
processes (or an API process and a queue worker) cannot start two turns in one session at once

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STREAMING = sa.text("status = 'streaming'")


def upgrade() -> None:
    # Sessions that already hold several unfinished answers (before this index, two processes
    # could start one each) keep their newest; the others end as a restart would end them.
    op.execute(
        """
        UPDATE messages SET status = 'interrupted'
        WHERE status = 'streaming' AND EXISTS (
            SELECT 1 FROM messages AS newer
            WHERE newer.session_id = messages.session_id
              AND newer.status = 'streaming' AND newer.id > messages.id
        )
        """
    )
    with op.batch_alter_table("messages") as batch_op:
        batch_op.create_index(
            "uq_messages_one_streaming_per_session",
            ["session_id"],
            unique=True,
            sqlite_where=STREAMING,
            postgresql_where=STREAMING,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index("uq_messages_one_streaming_per_session")
