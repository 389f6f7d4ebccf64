"""OpenAI's Responses API: an answer's calls of the client's tools (`messages.tool_calls`, sealed
text) and the call a tool message answers (`messages.tool_call_id`); the stored responses
(`responses`), each in a session of its user and gone with it.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("tool_calls", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tool_call_id", sa.String(255), nullable=True))
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("message_ids", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_responses_session_id", "responses", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_responses_session_id", table_name="responses")
    op.drop_table("responses")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("tool_call_id")
        batch_op.drop_column("tool_calls")
