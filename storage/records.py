"""Plain, detached records the store returns and accepts. No ORM row ever leaves the store."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# A step record's status. ``started`` is written before a tool is invoked; a replay skips ``completed``.
STEP_STARTED = "started"
STEP_COMPLETED = "completed"
STEP_FAILED = "failed"
STEP_CANCELLED = "cancelled"
STEP_WAITING = "waiting"  # a gate step whose gate awaits a decision


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def dumps(value: Any) -> str:
    """Compact JSON, the one serialisation used for every stored payload. (One encoder for every call: building
    one, as ``json.dumps`` with options does each time, costs more than encoding a small value.)"""
    return _ENCODE(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True, slots=True)
class StoredTool:
    name: str
    version: str
    definition: dict[str, Any]
    definition_hash: str
    deprecated: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class NewRun:
    """What the engine knows about a run when it creates it."""

    id: str
    step: dict[str, Any]
    input: Any
    lock: dict[str, str]
    limits: dict[str, Any]
    trace_id: str
    status: str = "pending"
    tags: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    principal: str = "local"
    deadline_at: float | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    pattern: str | None = None
    """The kind of its root step (``chain``, ``fan_out``, ...), for statistics."""
    span_id: str | None = None
    """The span that started it (``patterns.tracing``), for the spans of its resumptions to link to."""


@dataclass(frozen=True, slots=True)
class RunInsert:
    """A new run's row, for the writer (``Store.submit_new_run``): inserted before the batch's other records."""

    run_id: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventInsert:
    """An event decided without the database (every trigger it matched is in a cooldown the store already showed,
    and its id is new), for the writer: written behind, keeping an earlier record of the same id unless that one
    is older than ``DUPLICATE_S``."""

    row: dict[str, Any]

    @property
    def run_id(self) -> str:
        """What a failed write is reported under (the writer groups failures by run)."""
        return f"event:{self.row['id']}"


DUPLICATE_S = 86_400.0  # an event id stored less than this long ago makes an event with that id a duplicate


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    status: str
    step: dict[str, Any]
    input: Any
    output: Any
    error: dict[str, Any] | None
    missing: list[str]
    lock: dict[str, str]
    limits: dict[str, Any]
    tags: dict[str, str]
    usage_steps: int
    usage_cost: float
    idempotency_key: str | None
    parent_run_id: str | None
    principal: str
    trace_id: str
    lease_owner: str | None
    lease_expires_at: float | None
    deadline_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    history: list[dict[str, Any]] = field(default_factory=list)
    """Operator interventions, oldest first: who retried, skipped or cancelled what, when and why."""
    held_steps: int = 0
    """What runs started under this one by others than its own steps hold of its budget (``storage.ledger``)."""
    held_cost: float = 0.0
    hold_state: str | None = None
    """``open``/``closed`` on a run that drew its budget from the ledger; None otherwise."""
    hold_steps: int | None = None
    """Its grant so far (it grows as the run tops it up, up to its ``max_steps``)."""
    hold_cost: float | None = None
    span_id: str | None = None
    """The OpenTelemetry span that started the run, if one was recorded (``patterns.tracing``)."""

    @property
    def duration_ms(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else self.updated_at
        return max(0.0, (end - self.started_at) * 1000)


@dataclass(frozen=True, slots=True)
class RunUpdate:
    """A change to a run's mutable state. ``None`` fields are left as they are (``output`` uses ``set_output``)."""

    run_id: str
    status: str | None = None
    output_json: str | None = None
    set_output: bool = False
    error: dict[str, Any] | None = None
    set_error: bool = False
    missing: list[str] | None = None
    usage_steps: int | None = None
    usage_cost: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    at: float | None = None
    """When the change was made (``updated_at``); the writer's clock when None."""
    owner: str | None = None
    """If set, the change applies only while ``owner`` holds the run's lease (a fence against a stalled engine)."""
    time_left_s: float | None = None
    """Set when the run parks at a gate: the execution time it has left, restored as its deadline on resuming."""


STEP_COLUMNS = (
    "run_id", "path", "kind", "tool", "version", "status", "input", "output", "error", "missing", "attempts", "cost",
    "started_at", "finished_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StepWrite:
    """A full step row as the engine knows it now. Later writes of the same (run, path) replace earlier ones."""

    run_id: str
    path: str
    kind: str
    status: str
    started_at: float
    tool: str | None = None
    version: str | None = None
    input_json: str | None = None
    output_json: str | None = None
    error: dict[str, Any] | None = None
    missing: tuple[str, ...] = ()
    attempts: tuple[dict[str, Any], ...] = ()
    cost: float = 0.0
    finished_at: float | None = None

    def values(self) -> tuple[Any, ...]:
        """The row's values in the order of ``STEP_COLUMNS``."""
        return (
            self.run_id,
            self.path,
            self.kind,
            self.tool,
            self.version,
            self.status,
            self.input_json,
            self.output_json,
            None if self.error is None else dumps(self.error),
            dumps(list(self.missing)) if self.missing else "[]",
            dumps(list(self.attempts)) if self.attempts else "[]",
            self.cost,
            self.started_at,
            self.finished_at,
        )

    def row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "path": self.path,
            "kind": self.kind,
            "tool": self.tool,
            "version": self.version,
            "status": self.status,
            "input": self.input_json,
            "output": self.output_json,
            "error": None if self.error is None else dumps(self.error),
            "missing": dumps(list(self.missing)) if self.missing else "[]",
            "attempts": dumps(list(self.attempts)) if self.attempts else "[]",
            "cost": self.cost,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: str
    path: str
    kind: str
    tool: str | None
    version: str | None
    status: str
    input: Any
    output: Any
    output_json: str | None
    error: dict[str, Any] | None
    missing: list[str]
    attempts: list[dict[str, Any]]
    cost: float
    started_at: float
    finished_at: float | None

    @property
    def duration_ms(self) -> float | None:
        return None if self.finished_at is None else max(0.0, (self.finished_at - self.started_at) * 1000)


GATE_PENDING = "pending"
GATE_DECIDED = "decided"
GATE_EXPIRED = "expired"
GATE_TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class NewGate:
    id: str
    run_id: str
    path: str
    title: str
    brief: str
    payload: Any
    payload_schema: dict[str, Any] | None
    approvers: list[str]
    escalate_to: list[str]
    sla_s: float
    on_timeout: str
    opened_by: str


@dataclass(frozen=True, slots=True)
class GateRecord:
    id: str
    run_id: str
    path: str
    title: str
    brief: str
    payload: Any
    payload_schema: dict[str, Any] | None
    approvers: list[str]
    escalate_to: list[str]
    level: int
    sla_s: float
    sla_at: float
    reminded_level: int
    on_timeout: str
    status: str
    decision: str | None
    decided_by: str | None
    decided_at: float | None
    comment: str | None
    decided_payload: Any
    payload_hash: str | None
    opened_by: str
    consumed_at: float | None
    history: list[dict[str, Any]]
    created_at: float
    updated_at: float

    @property
    def current_approvers(self) -> list[str]:
        """Who is asked now: the gate's approvers, or the escalation target of the current level."""
        return list(self.approvers) if self.level == 0 else [self.escalate_to[self.level - 1]]

    @property
    def allowed_deciders(self) -> list[str]:
        """Everyone who may decide: the approvers and everyone the gate has escalated to so far."""
        return [*self.approvers, *self.escalate_to[: self.level]]


DELEGATION_KEY_PREFIX = "podium:"
"""The idempotency keys of child runs that delegation steps start are ``podium:{parent}:{path}``; callers' keys may
not start so."""


# -- events --

STARTING = "starting"
"""In a stored outcome: the triggers that fired and whose runs are not recorded as started yet."""


_seconds: dict[int, str] = {}  # whole seconds already formatted: events come many a second, with a few times each


def iso_time(at: float) -> str:
    """``2026-12-04T05:25:05.123Z``: an epoch time as ISO-8601 UTC, to the millisecond (truncated)."""
    fraction, whole = math.modf(at)  # as datetime.fromtimestamp rounds
    second, micros = int(whole), round(fraction * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    text = _seconds.get(second)
    if text is None:
        if len(_seconds) >= 1024:
            _seconds.clear()
        text = _seconds[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micros // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Claim:
    """What an event asks of one trigger's key: fire now unless in cooldown, or (``debounce_s``) be held back."""

    trigger: str
    key: str
    cooldown_s: float
    debounce_s: float | None = None
    max_wait_s: float | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    type: str
    key: str | None
    payload: Any
    source: str
    outcome: dict[str, Any]
    received_at: float


# -- circuit breakers --

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    tool: str
    state: str
    generation: int
    opened_at: float | None
    open_s: float
    opens: int
    reason: str | None
    probe_owner: str | None
    probe_expires_at: float | None
    updated_at: float

    def open_until(self) -> float | None:
        return None if self.opened_at is None else self.opened_at + self.open_s
