"""The tables, as typed SQLAlchemy ORM classes. Only the store uses them; callers get plain records.

Timestamps are Unix epoch seconds (float) so that lease and deadline comparisons are plain arithmetic on
every backend. JSON payloads are stored as text the engine serialised itself (it measures their size).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ToolRow(Base):
    __tablename__ = "tools"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    definition_hash: Mapped[str] = mapped_column(String(64))
    deprecated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class WorkflowRow(Base):
    """A published workflow version: the same shape as a tool's."""

    __tablename__ = "workflows"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    definition_hash: Mapped[str] = mapped_column(String(64))
    deprecated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class ServerRow(Base):
    """A downstream MCP server (how to reach it, ``${VAR}`` unexpanded); its tools are rows of ``tools``."""

    __tablename__ = "servers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    definition_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Float)


class BreakerRow(Base):
    """A tool version's circuit breaker (``storage.breakers``): every transition is a compare-and-set on
    ``generation``."""

    __tablename__ = "breakers"

    tool: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[float | None] = mapped_column(Float)
    open_s: Mapped[float] = mapped_column(Float)
    opens: Mapped[int] = mapped_column(Integer)
    """Times it opened in a row (reset when a probe closes it): each re-open doubles ``open_s``, up to a cap."""
    reason: Mapped[str | None] = mapped_column(Text)
    probe_owner: Mapped[str | None] = mapped_column(String(200))
    probe_expires_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class BreakerCallRow(Base):
    """Calls of a tool version that ended, and how many failed transiently, per ``BUCKET_S`` of time."""

    __tablename__ = "breaker_calls"

    tool: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer)


class TriggerRow(Base):
    """An event trigger (``registry.triggers``): not versioned; adding it again replaces it."""

    __tablename__ = "triggers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    definition_hash: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    """An event received, with what it caused: ``outcome`` is ``{fired: [...], suppressed: [...], skipped: [...]}``."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(128))
    key: Mapped[str | None] = mapped_column(String(512), index=True)
    payload: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Float, index=True)

    __table_args__ = (Index("ix_events_type_received_at", "type", "received_at"),)


class TriggerKeyRow(Base):
    """When a trigger may fire again for one key: the cooldown, decided by one upsert (``storage.events``)."""

    __tablename__ = "trigger_keys"

    trigger: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    next_allowed_at: Mapped[float] = mapped_column(Float)
    event_id: Mapped[str] = mapped_column(String(200))
    fired_at: Mapped[float] = mapped_column(Float)
    pending_event_id: Mapped[str | None] = mapped_column(String(200))
    """A debounced trigger's latest event, held back until ``due_at``."""
    first_at: Mapped[float | None] = mapped_column(Float)
    due_at: Mapped[float | None] = mapped_column(Float, index=True)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    step: Mapped[str] = mapped_column(Text)
    input: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    missing: Mapped[str] = mapped_column(Text, default="[]")
    lock: Mapped[str] = mapped_column(Text, default="{}")
    limits: Mapped[str] = mapped_column(Text, default="{}")
    tags: Mapped[str] = mapped_column(Text, default="{}")
    usage_steps: Mapped[int] = mapped_column(Integer, default=0)
    usage_cost: Mapped[float] = mapped_column(Float, default=0.0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)
    principal: Mapped[str] = mapped_column(String(200), default="local")
    trace_id: Mapped[str] = mapped_column(String(64))
    pattern: Mapped[str | None] = mapped_column(String(20))
    """The kind of the run's root step (``chain``, ``fan_out``, ...), for ``storage.stats``."""
    span_id: Mapped[str | None] = mapped_column(String(16))
    """The OpenTelemetry span that started the run (``patterns.tracing``): a resumption's span links to it."""
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    deadline_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    history: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    """Operator interventions, oldest first: ``{"action", "by", "at", "reason", ...}``."""
    time_left_s: Mapped[float | None] = mapped_column(Float)
    """While a run waits at a gate: the execution time it had left (waiting for a person does not count)."""
    held_steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Budget ledger (``storage.ledger``): steps that runs started under this one (not by its own delegation
    steps) hold while open, or used once ended."""
    held_cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    hold_steps: Mapped[int | None] = mapped_column(Integer)
    """On a run that drew its budget through the ledger: the steps it was granted (its ``max_steps``)."""
    hold_cost: Mapped[float | None] = mapped_column(Float)
    hold_from: Mapped[str | None] = mapped_column(Text)
    """The runs it drew its grant from: a JSON list of ids, its parent first."""
    hold_state: Mapped[str | None] = mapped_column(String(8), index=True)
    """``open`` while its grant is held; ``closed`` once what it did not use went back (``None``: no grant)."""

    __table_args__ = (Index("ix_runs_status_lease", "status", "lease_expires_at"),)


class StepRow(Base):
    """One executed node of a run's step tree, keyed by its deterministic path: the checkpoint."""

    __tablename__ = "steps"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    tool: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    input: Mapped[str | None] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    missing: Mapped[str] = mapped_column(Text, default="[]")
    attempts: Mapped[str] = mapped_column(Text, default="[]")
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


# ``storage.stats``: per tool version, in duration order, with what the aggregates read (migration 0010)
Index(
    "ix_steps_stats",
    StepRow.tool,
    StepRow.version,
    StepRow.finished_at - StepRow.started_at,
    StepRow.started_at,
    StepRow.status,
    StepRow.cost,
)


class GateRow(Base):
    """A human decision point of a run: who may decide, by when, and what was decided."""

    __tablename__ = "gates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(512))
    title: Mapped[str] = mapped_column(Text)
    brief: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    payload_schema: Mapped[str | None] = mapped_column(Text)
    approvers: Mapped[str] = mapped_column(Text)
    escalate_to: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer, default=0)
    sla_s: Mapped[float] = mapped_column(Float)
    sla_at: Mapped[float] = mapped_column(Float)
    reminded_level: Mapped[int] = mapped_column(Integer, default=-1)
    on_timeout: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    decision: Mapped[str | None] = mapped_column(String(10))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    decided_payload: Mapped[str | None] = mapped_column(Text)
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    opened_by: Mapped[str] = mapped_column(String(200))
    consumed_at: Mapped[float | None] = mapped_column(Float)
    """When the run went past the settled gate; until then the scheduler resumes the run."""
    history: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("run_id", "path", name="uq_gates_run_id"),
        Index("ix_gates_status_sla", "status", "sla_at"),
    )
