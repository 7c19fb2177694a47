"""Circuit breakers: one per tool version, shared by every replica, and the calls counted per time bucket.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "breakers",
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=True),
        sa.Column("open_s", sa.Float(), nullable=False),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("probe_owner", sa.String(length=200), nullable=True),
        sa.Column("probe_expires_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tool", name="pk_breakers"),
    )
    op.create_table(
        "breaker_calls",
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tool", "bucket", name="pk_breaker_calls"),
    )


def downgrade() -> None:
    op.drop_table("breaker_calls")
    op.drop_table("breakers")
