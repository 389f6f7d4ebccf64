"""The operators' tables: the usage ledger (`usage_records`: engine calls and cached answers, a
caller's calls of one model within a write summed in a row) and the prices it is costed at
(`model_prices`); budgets per user or API key (`budgets`); hand-offs to a person (`handoffs`,
one per session, gone with it) and an assistant's hand-off policy (`assistants.handoff`); every
version of every assistant (`assistant_versions`, the current one of each written here from
`assistants`).

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An assistant's configuration as it was at migration time: every column a version keeps.
VERSIONED = (
    "name", "description", "provider", "model", "system_prompt", "max_context_tokens",
    "max_answer_tokens", "temperature", "fallback_providers", "fallback_answer", "cache_answers",
    "guards", "knowledge_bases", "retention_days", "stream_on_disconnect", "enabled",
)  # fmt: skip
JSON_COLUMNS = frozenset({"fallback_providers", "guards", "knowledge_bases"})


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("assistant_id", sa.String(64), nullable=True),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("engine", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_usage_records_day", "usage_records", ["day"])
    op.create_index("ix_usage_records_user_day", "usage_records", ["user_id", "day"])
    op.create_index("ix_usage_records_key_day", "usage_records", ["key_id", "day"])
    op.create_table(
        "model_prices",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("input_per_million", sa.Float(), nullable=False),
        sa.Column("output_per_million", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "budgets",
        sa.Column("scope", sa.String(8), primary_key=True),
        sa.Column("subject_id", sa.String(255), primary_key=True),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("max_tokens", sa.BigInteger(), nullable=True),
        sa.Column("max_cost", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "handoffs",
        sa.Column(
            "session_id",
            sa.Uuid(),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("assistant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.String(255), nullable=True),
        sa.Column("webhook_status", sa.String(16), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("webhook_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_handoffs_status_requested", "handoffs", ["status", "requested_at"])
    with op.batch_alter_table("assistants") as batch_op:
        batch_op.add_column(sa.Column("handoff", sa.JSON(), nullable=True))
    versions = op.create_table(
        "assistant_versions",
        sa.Column("assistant_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    assistants = sa.table(
        "assistants",
        sa.column("id", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.JSON() if name in JSON_COLUMNS else None) for name in VERSIONED),
    )
    rows = op.get_bind().execute(sa.select(assistants)).mappings().all()
    if rows:
        op.bulk_insert(
            versions,
            [
                {
                    "assistant_id": row["id"],
                    "version": row["version"],
                    "config": {name: row[name] for name in VERSIONED},
                    "user_id": None,
                    "created_at": row["updated_at"],
                }
                for row in rows
            ],
        )


def downgrade() -> None:
    op.drop_table("assistant_versions")
    with op.batch_alter_table("assistants") as batch_op:
        batch_op.drop_column("handoff")
    op.drop_index("ix_handoffs_status_requested", table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_table("budgets")
    op.drop_table("model_prices")
    op.drop_index("ix_usage_records_key_day", table_name="usage_records")
    op.drop_index("ix_usage_records_user_day", table_name="usage_records")
    op.drop_index("ix_usage_records_day", table_name="usage_records")
    op.drop_table("usage_records")
