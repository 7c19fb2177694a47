"""Run history (operator interventions: retry, skip, cancel; who and when), and the time a parked run has left.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("history", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("time_left_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("time_left_s")
        batch.drop_column("history")
