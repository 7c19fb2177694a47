"""The budget ledger: what runs started under a run hold of its budget, and what each such child drew from whom.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("held_steps", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("held_cost", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("hold_steps", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hold_cost", sa.Float(), nullable=True))
        batch.add_column(sa.Column("hold_from", sa.Text(), nullable=True))
        batch.add_column(sa.Column("hold_state", sa.String(length=8), nullable=True))
        batch.create_index("ix_runs_hold_state", ["hold_state"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_hold_state")
        for column in ("hold_state", "hold_from", "hold_cost", "hold_steps", "held_cost", "held_steps"):
            batch.drop_column(column)
