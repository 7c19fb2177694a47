"""Event triggers: the triggers, the events received (with what each caused), and the cooldown of each
(trigger, key).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("definition_hash", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_triggers"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_events_type_received_at", "events", ["type", "received_at"])
    op.create_index("ix_events_key", "events", ["key"])
    op.create_table(
        "trigger_keys",
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("next_allowed_at", sa.Float(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("trigger", "key", name="pk_trigger_keys"),
    )


def downgrade() -> None:
    op.drop_table("trigger_keys")
    op.drop_index("ix_events_key", table_name="events")
    op.drop_index("ix_events_type_received_at", table_name="events")
    op.drop_index("ix_events_received_at", table_name="events")
    op.drop_table("events")
    op.drop_table("triggers")
