"""Statistics and tracing: an index on the step records by tool version and duration (``storage.stats``), each
run's pattern (the kind of its root step, filled in from the step records for the runs there are), and the
OpenTelemetry span that started each run (``patterns.tracing``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DURATION = sa.text("(finished_at - started_at)")
COLUMNS: list[str | sa.TextClause] = ["tool", "version", DURATION, "started_at", "status", "cost"]


def upgrade() -> None:
    op.create_index("ix_steps_stats", "steps", COLUMNS)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("pattern", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("span_id", sa.String(length=16), nullable=True))
    op.execute("UPDATE runs SET pattern = (SELECT kind FROM steps WHERE steps.run_id = runs.id AND steps.path = '')")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("span_id")
        batch.drop_column("pattern")
    op.drop_index("ix_steps_stats", table_name="steps")
