"""What the MCP tools return: structured, stable field names (the public contract in DESIGN.md).

A ``RunResult`` stays small whatever the run's size: at most ``step_limit`` steps (problems first) with counts of
all of them, an ``output`` over ``max_result_bytes`` replaced by a pointer to the resource that holds it, and the
whole under ``RESULT_BUDGET``. Times are ISO-8601 UTC strings.
"""

from __future__ import annotations

import datetime
import heapq
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from patterns import Engine, PatternError, RunOptions
from patterns.planning import WORKFLOW_LOCK_PREFIX
from patterns.workflows import plan_workflow, problems as workflow_problems, refuse_cycles, workflow_lock
from registry import ToolSpec, WorkflowSpec
from storage import GateRecord, RunRecord, StepRecord


class ErrorInfo(BaseModel):
    type: str = Field(
        description="invalid_input, unknown_tool, contract_violation, limit_exceeded, tool_failed, "
        "timeout, gate_rejected, cancelled, internal or circuit_open"
    )
    message: str
    step: str | None = Field(None, description="Path of the step that failed, e.g. '0/fan_out/3'.")


class StepInfo(BaseModel):
    path: str
    tool: str | None
    version: str | None
    status: str
    attempts: int
    duration_ms: float | None
    error: ErrorInfo | None


class Usage(BaseModel):
    steps: int
    cost: float
    duration_ms: float


class StepCounts(BaseModel):
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    running: int = Field(0, description="Started and not finished, or waiting at a gate.")
    skipped: int = Field(0, description="Completed by an operator's `podium runs skip` rather than by the tool.")


class GateInfo(BaseModel):
    gate_id: str
    title: str
    approvers: list[str]
    sla_at: str | None = Field(description="When the current approver's SLA ends (ISO-8601 UTC).")
    status: str


class GateDetail(BaseModel):
    gate_id: str
    run_id: str
    path: str
    title: str
    brief: str
    payload: Any
    approvers: list[str] = Field(description="Who is asked now.")
    escalate_to: list[str]
    level: int
    sla_at: str
    on_timeout: str
    status: str
    decision: str | None
    decided_by: str | None
    decided_at: str | None
    comment: str | None
    decided_payload: Any
    opened_by: str
    history: list[dict[str, Any]]
    created_at: str


class GateList(BaseModel):
    gates: list[GateDetail]


class ChildInfo(BaseModel):
    run_id: str
    status: str
    workflow: str | None


class RunResult(BaseModel):
    """The state of a run and what to do next."""

    run_id: str
    status: str = Field(
        description="pending running waiting succeeded partial failed rejected cancelled timed_out needs_attention"
    )
    output: Any = None
    error: ErrorInfo | None = None
    output_truncated: bool = Field(
        False, description="The output was too large for this result: read it from podium://runs/{run_id}/output."
    )
    missing: list[str] = Field(default_factory=list, description="Paths whose data is unavailable.")
    steps: list[StepInfo] = Field(
        default_factory=list, description="At most step_limit steps: failed, cancelled, in flight, then the rest."
    )
    step_counts: StepCounts = Field(default_factory=StepCounts, description="All of the run's steps, by status.")
    steps_omitted: int = Field(0, description="Steps left out of `steps`: podium://runs/{run_id}/steps has all.")
    usage: Usage
    created_at: str | None = None
    finished_at: str | None = Field(None, description="When the run settled (none while it runs or waits).")
    gate: GateInfo | None = None
    next_action: str
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Operator actions, oldest first: action (retry, skip, cancel), by, at, steps, reason.",
    )
    children: list[ChildInfo] = Field(
        default_factory=list, description="Child runs, oldest first (at most step_limit)."
    )
    tags: dict[str, str] = Field(default_factory=dict)
    trace_id: str


class RunSummary(BaseModel):
    run_id: str
    status: str
    created_at: str
    usage: Usage
    error: ErrorInfo | None
    tags: dict[str, str]


class RunList(BaseModel):
    runs: list[RunSummary]


class EventAnswer(BaseModel):
    """What an event caused (``emit_event``, ``podium events emit``)."""

    event_id: str
    duplicate: bool
    fired: list[dict[str, str]]
    """``{trigger, run_id, key}`` per run started."""
    suppressed: list[dict[str, str]]
    """``{trigger, reason: duplicate|cooldown|debounced, until, key?}``."""
    skipped: list[dict[str, str]]
    """``{trigger, reason, key?}``: an expression failed on the event, or the workflow refused its input."""


class ToolInfo(BaseModel):
    name: str
    version: str
    description: str
    versions: list[str] = Field(default_factory=list, description="Every registered version, highest first.")
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    idempotent: bool
    cost: float
    timeout_s: float | None
    tags: list[str]
    deprecated: bool


class ToolList(BaseModel):
    tools: list[ToolInfo]


class ToolSummary(BaseModel):
    name: str
    version: str = Field(description="The version a reference without a version resolves to.")
    versions: list[str] = Field(description="Every registered version, highest first.")
    description: str
    tags: list[str]
    deprecated: bool
    kind: Literal["tool", "workflow"] = "tool"


class WorkflowInfo(BaseModel):
    name: str
    version: str
    description: str
    versions: list[str] = Field(default_factory=list, description="Every published version, highest first.")
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    step: dict[str, Any]
    limits: dict[str, float] | None
    allowed_tools: list[str] | None
    deprecated: bool


class WorkflowList(BaseModel):
    workflows: list[WorkflowInfo]


class ToolMatches(BaseModel):
    tools: list[ToolSummary] = Field(description="At most `limit` tools; describe_tool gives one's schemas.")
    total: int = Field(description="How many tools matched.")


class RunSteps(BaseModel):
    run_id: str
    steps: list[StepInfo]


class Validation(BaseModel):
    valid: bool
    lock: dict[str, str] = Field(
        default_factory=dict, description="Each tool reference and the version it resolves to."
    )
    problems: list[str] = Field(default_factory=list)


def next_action(record: RunRecord) -> str:
    """One sentence telling the model what to do with this result."""
    rid = record.id
    status = record.status
    error = record.error or {}
    if status in ("pending", "running"):
        return f"The run is still going: call wait_run with run_id {rid!r} to keep waiting."
    if status == "succeeded":
        return "The run succeeded: use its output."
    if status == "partial":
        gaps = ", ".join(record.missing)
        verb = "is" if len(record.missing) == 1 else "are"
        return (
            f"The run finished with gaps: {gaps} {verb} unavailable; treat that as 'data unavailable — manual "
            "review recommended' or re-run just those steps."
        )
    if status == "cancelled":
        return "The run was cancelled; start a new run if the work is still needed."
    if status == "timed_out":
        return "The run ran out of time; start it again with a longer deadline or less work."
    if status == "waiting":
        return f"The run waits for a human decision on a gate: call wait_run with run_id {rid!r} to wait for it."
    if status == "rejected":
        return "A human rejected the request at a gate: do not go ahead; report the rejection and its comment."
    if status == "needs_attention":
        step = error.get("step")
        return (
            f"A non-idempotent step ({step}) was interrupted and may or may not have taken effect; do not rely on "
            f"this run. Ask an operator to check, then run `podium runs retry {rid} --step {step}` if it did not "
            f"take effect, or `podium runs skip {rid} --step {step} --output JSON` if it did."
        )
    kind = error.get("type")
    if kind in ("invalid_input", "contract_violation"):
        return "Fix the input or the step the error names, then start a new run."
    if kind == "limit_exceeded":
        return "A hard limit stopped the run; do less work per run (fewer steps, branches or iterations)."
    if kind in ("tool_failed", "timeout"):
        return "A tool failed after its retries; add a fallback, mark the step critical: false, or try again later."
    return "The run failed; read error.message before deciding what to do next."


DEFAULT_STEP_LIMIT = 20
MAX_STEP_LIMIT = 1000
DEFAULT_MAX_RESULT_BYTES = 262_144
RESULT_BUDGET = 245_760
"""The most a RunResult's JSON may take: its wire message carries it twice (structured and as text), under 512 KiB."""
_PROBLEMS = {"failed": 0, "cancelled": 1, "started": 2, "waiting": 2}
_DIGITS = re.compile(r"(\d+)")


def iso(at: float | None) -> str | None:
    """An epoch time as ISO-8601 UTC with milliseconds: ``2026-12-01T23:02:28.123Z``."""
    if at is None:
        return None
    when = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(text: str) -> float:
    """The epoch time of an ISO-8601 string made by ``iso``."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _with_iso_times(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "at": iso(e["at"])} if isinstance(e.get("at"), int | float) else e for e in entries]


def path_key(path: str) -> list[tuple[int, int | str]]:
    """Paths in tree order, numbers as numbers: ``fan_out/9`` before ``fan_out/10``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(path) if part]


def step_info(record: StepRecord) -> StepInfo:
    return StepInfo(
        path=record.path,
        tool=record.tool if record.kind == "tool" else record.kind,
        version=record.version,
        status=record.status,
        attempts=len(record.attempts),
        duration_ms=None if record.duration_ms is None else round(record.duration_ms, 3),
        error=None if record.error is None else ErrorInfo(**record.error),
    )


def step_counts(statuses: list[tuple[str, str]], history: list[dict[str, Any]]) -> StepCounts:
    """Counts by status of a run's ``(path, status)`` pairs; a completed step an operator skipped counts as
    skipped."""
    skipped = {p for e in history if e.get("action") == "skip" for p in e.get("steps", [])}
    counts = StepCounts()
    for path, status in statuses:
        if status == "completed":
            if path in skipped:
                counts.skipped += 1
            else:
                counts.completed += 1
        elif status in ("failed", "cancelled"):
            setattr(counts, status, getattr(counts, status) + 1)
        else:
            counts.running += 1
    return counts


def pick_steps(statuses: list[tuple[str, str]], limit: int | None) -> list[str]:
    """The paths a result lists, from a run's ``(path, status)`` pairs: problems first (failed, cancelled,
    unfinished), then in tree order; at most ``limit`` of them (None: all)."""
    if limit == 0:
        return []

    def order(pair: tuple[str, str]) -> tuple[int, list[tuple[int, int | str]]]:
        return _PROBLEMS.get(pair[1], 3), path_key(pair[0])

    chosen = sorted(statuses, key=order) if limit is None else heapq.nsmallest(limit, statuses, key=order)
    return [path for path, _ in chosen]


@dataclass(frozen=True, slots=True)
class StepView:
    """What a result needs of a run's steps, read without the rest: every ``(path, status)``, and the records of
    those it lists (``pick_steps``), in order; and its first child runs."""

    statuses: list[tuple[str, str]]
    shown: list[StepRecord]
    children: list[RunRecord] = field(default_factory=list)


def child_info(record: RunRecord) -> ChildInfo:
    workflow = next(
        (
            f"{ref.removeprefix(WORKFLOW_LOCK_PREFIX)}@{v}"
            for ref, v in record.lock.items()
            if ref.startswith(WORKFLOW_LOCK_PREFIX) and "@" not in ref
        ),
        None,
    )
    return ChildInfo(run_id=record.id, status=record.status, workflow=workflow)


def usage(record: RunRecord) -> Usage:
    return Usage(steps=record.usage_steps, cost=round(record.usage_cost, 6), duration_ms=round(record.duration_ms, 3))


def gate_detail(gate: GateRecord) -> GateDetail:
    return GateDetail(
        gate_id=gate.id,
        run_id=gate.run_id,
        path=gate.path,
        title=gate.title,
        brief=gate.brief,
        payload=gate.payload,
        approvers=gate.current_approvers,
        escalate_to=gate.escalate_to,
        level=gate.level,
        sla_at=iso(gate.sla_at) or "",
        on_timeout=gate.on_timeout,
        status=gate.status,
        decision=gate.decision,
        decided_by=gate.decided_by,
        decided_at=iso(gate.decided_at),
        comment=gate.comment,
        decided_payload=gate.decided_payload,
        opened_by=gate.opened_by,
        history=_with_iso_times(gate.history),
        created_at=iso(gate.created_at) or "",
    )


def gate_info(gate: GateRecord) -> GateInfo:
    return GateInfo(
        gate_id=gate.id, title=gate.title, approvers=gate.current_approvers, sla_at=iso(gate.sla_at), status=gate.status
    )


def gate_action(gate: GateRecord, run_id: str, approval_url: str | None, can_elicit: bool) -> str:
    """Who decides a waiting gate and the exact commands (and link) that do it."""
    asked = gate.current_approvers
    as_name = f" --as {asked[0]}" if asked else ""
    commands = f"`podium gates approve {gate.id}{as_name}` or `podium gates reject {gate.id}{as_name}`"
    link = f", or the approval link {approval_url}{gate.id}" if approval_url else ""
    if asked == ["requester"] and not can_elicit:
        return (
            f"Gate {gate.id} ({gate.title!r}) asks the human behind your client (`requester`), but your client cannot "
            f"ask them (no elicitation): a person must decide it with {commands}{link}; then call wait_run with "
            f"run_id {run_id!r}."
        )
    who = ", ".join(asked) or "any approver"
    return (
        f"Ask a human ({who}) to decide gate {gate.id} ({gate.title!r}): {commands}{link}; then call wait_run with "
        f"run_id {run_id!r}."
    )


def run_result(
    record: RunRecord,
    steps: list[StepRecord] | StepView | None = None,
    gate: GateRecord | None = None,
    approval_url: str | None = None,
    *,
    step_limit: int | None = DEFAULT_STEP_LIMIT,
    max_output_bytes: int | None = DEFAULT_MAX_RESULT_BYTES,
    can_elicit: bool = True,
) -> RunResult:
    """The result a caller sees. ``step_limit`` None lists every step and ``max_output_bytes`` None keeps any output
    (the CLI's views); otherwise the result stays within ``RESULT_BUDGET``. ``steps``: every record of the run, or
    a ``StepView`` picked with the same ``step_limit``."""
    children: list[RunRecord] = []
    if isinstance(steps, StepView):
        statuses, shown, children = steps.statuses, steps.shown, steps.children
    else:
        records = {s.path: s for s in steps or []}
        statuses = [(s.path, s.status) for s in records.values()]
        shown = [records[path] for path in pick_steps(statuses, step_limit)]
    action = next_action(record) if gate is None else gate_action(gate, record.id, approval_url, can_elicit)
    output, truncated = record.output, False
    if max_output_bytes is not None and record.output is not None:
        size = len(json.dumps(record.output, separators=(",", ":"), ensure_ascii=False).encode())
        if size > max_output_bytes:
            output, truncated = None, True
            action += (
                f" The output ({size} bytes) is too large for this result: read it from the resource "
                f"podium://runs/{record.id}/output."
            )
    result = RunResult(
        run_id=record.id,
        status=record.status,
        output=output,
        output_truncated=truncated,
        error=None if record.error is None else ErrorInfo(**record.error),
        missing=list(record.missing),
        steps=[step_info(s) for s in shown],
        step_counts=step_counts(statuses, record.history),
        steps_omitted=len(statuses) - len(shown),
        usage=usage(record),
        tags=dict(record.tags),
        created_at=iso(record.created_at),
        finished_at=iso(record.finished_at),
        gate=None if gate is None else gate_info(gate),
        next_action=action,
        history=_with_iso_times(list(record.history)),
        children=[child_info(c) for c in children],
        trace_id=record.trace_id,
    )
    return result if step_limit is None and max_output_bytes is None else _within_budget(result)


def _within_budget(result: RunResult) -> RunResult:
    """Drop steps (the last first), then the output, until the result's JSON fits ``RESULT_BUDGET``."""
    while len(result.model_dump_json()) > RESULT_BUDGET:
        if result.steps:
            keep = len(result.steps) // 2
            result.steps_omitted += len(result.steps) - keep
            result.steps = result.steps[:keep]
        elif result.output is not None:
            result.output, result.output_truncated = None, True
            result.next_action += (
                f" The output is too large for this result: read podium://runs/{result.run_id}/output."
            )
        else:
            break
    return result


def run_summary(record: RunRecord) -> RunSummary:
    return RunSummary(
        run_id=record.id,
        status=record.status,
        created_at=iso(record.created_at) or "",
        usage=usage(record),
        error=None if record.error is None else ErrorInfo(**record.error),
        tags=dict(record.tags),
    )


def tool_info(spec: ToolSpec, versions: list[str] | None = None) -> ToolInfo:
    return ToolInfo(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        versions=versions or [spec.version],
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        idempotent=spec.idempotent,
        cost=spec.cost,
        timeout_s=spec.timeout_s,
        tags=list(spec.tags),
        deprecated=spec.deprecated,
    )


def workflow_info(spec: WorkflowSpec, versions: list[str] | None = None) -> WorkflowInfo:
    return WorkflowInfo(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        versions=versions or [spec.version],
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        step=spec.step,
        limits=spec.limits,
        allowed_tools=None if spec.allowed_tools is None else list(spec.allowed_tools),
        deprecated=spec.deprecated,
    )


def workflow_catalogue(specs: list[WorkflowSpec]) -> list[WorkflowInfo]:
    """One entry per workflow name: its newest stable, non-deprecated version (else its newest), with every
    version."""
    by_name: dict[str, list[WorkflowSpec]] = {}
    for spec in specs:
        by_name.setdefault(spec.name, []).append(spec)
    found = []
    for name in sorted(by_name):
        ordered = sorted(by_name[name], key=lambda s: s.parsed_version.sort_key(), reverse=True)
        current = next((s for s in ordered if not s.deprecated and not s.parsed_version.is_prerelease), ordered[0])
        found.append(workflow_info(current, [s.version for s in ordered]))
    return found


def workflow_summary(info: WorkflowInfo) -> ToolSummary:
    """What ``find_tools`` lists of a workflow."""
    return ToolSummary(
        name=info.name,
        version=info.version,
        versions=info.versions,
        description=info.description,
        tags=[],
        deprecated=info.deprecated,
        kind="workflow",
    )


async def check_workflow(engine: Engine, spec: WorkflowSpec) -> Validation:
    """What ``validate(workflow=...)`` reports: the workflow's problems, or the versions it resolves to."""
    try:
        await refuse_cycles(spec, engine.registry)
        planned = await plan_workflow(spec, RunOptions(), engine.limits, engine.registry)
    except PatternError as exc:
        return Validation(valid=False, problems=[f"{exc.type}: {exc.message}"])
    problems = [f"contract_violation: {p}" for p in workflow_problems(spec, planned)]
    return Validation(valid=not problems, lock=workflow_lock(spec, planned), problems=problems)


def tool_summary(info: ToolInfo) -> ToolSummary:
    """What ``find_tools`` lists of a tool: its info without the schemas."""
    return ToolSummary.model_validate(info.model_dump(include=set(ToolSummary.model_fields)))


def catalogue(specs: list[ToolSpec]) -> list[ToolInfo]:
    """One entry per tool name: its newest stable, non-deprecated version (else its newest), with every version."""
    latest: dict[str, ToolSpec] = {}
    versions: dict[str, list[str]] = {}
    for spec in sorted(specs, key=lambda s: s.parsed_version.sort_key()):
        versions.setdefault(spec.name, []).insert(0, spec.version)
        if spec.name not in latest or not spec.deprecated and not spec.parsed_version.is_prerelease:
            latest[spec.name] = spec
    return [tool_info(spec, versions[name]) for name, spec in sorted(latest.items())]


async def check_plan(engine: Engine, step: Any) -> Validation:
    """What ``validate`` reports: the tree's problems, or the versions its references resolve to."""
    try:
        plan = await engine.plan(step)
    except PatternError as exc:
        return Validation(valid=False, problems=[f"{exc.type}: {exc.message}"])
    problems = [f"contract_violation: {gap}" for gap in plan.schema_gaps()]
    return Validation(valid=not problems, lock=plan.lock, problems=problems)
