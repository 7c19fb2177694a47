"""Debounced triggers: the event a (trigger, key) holds back, since when, and when it fires (a durable timer).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trigger_keys") as batch:
        batch.add_column(sa.Column("pending_event_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("first_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("due_at", sa.Float(), nullable=True))
        batch.create_index("ix_trigger_keys_due_at", ["due_at"])


def downgrade() -> None:
    with op.batch_alter_table("trigger_keys") as batch:
        batch.drop_index("ix_trigger_keys_due_at")
        for column in ("due_at", "first_at", "pending_event_id"):
            batch.drop_column(column)
