"""Approval gates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gates",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("brief", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_schema", sa.Text(), nullable=True),
        sa.Column("approvers", sa.Text(), nullable=False),
        sa.Column("escalate_to", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("sla_s", sa.Float(), nullable=False),
        sa.Column("sla_at", sa.Float(), nullable=False),
        sa.Column("reminded_level", sa.Integer(), nullable=False),
        sa.Column("on_timeout", sa.String(10), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("decision", sa.String(10), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_payload", sa.Text(), nullable=True),
        sa.Column("payload_hash", sa.String(64), nullable=True),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("consumed_at", sa.Float(), nullable=True),
        sa.Column("history", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gates"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_gates_run_id_runs", ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "path", name="uq_gates_run_id"),
    )
    op.create_index("ix_gates_status_sla", "gates", ["status", "sla_at"])


def downgrade() -> None:
    op.drop_index("ix_gates_status_sla", table_name="gates")
    op.drop_table("gates")
