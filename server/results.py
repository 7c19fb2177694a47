"""What the MCP tools return: structured, stable field names (the public contract in DESIGN.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from patterns import Engine, PatternError
from registry import ToolSpec
from storage import GateRecord, RunRecord, StepRecord


class ErrorInfo(BaseModel):
    type: str = Field(
        description="invalid_input, unknown_tool, contract_violation, limit_exceeded, tool_failed, "
        "timeout, gate_rejected, cancelled or internal"
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


class GateInfo(BaseModel):
    gate_id: str
    title: str
    approvers: list[str]
    sla_at: float | None
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
    sla_at: float
    on_timeout: str
    status: str
    decision: str | None
    decided_by: str | None
    decided_at: float | None
    comment: str | None
    decided_payload: Any
    opened_by: str
    history: list[dict[str, Any]]
    created_at: float


class GateList(BaseModel):
    gates: list[GateDetail]


class RunResult(BaseModel):
    """The state of a run and what to do next."""

    run_id: str
    status: str = Field(
        description="pending running waiting succeeded partial failed rejected cancelled timed_out needs_attention"
    )
    output: Any = None
    error: ErrorInfo | None = None
    missing: list[str] = Field(default_factory=list, description="Paths whose data is unavailable.")
    steps: list[StepInfo] = Field(default_factory=list)
    usage: Usage
    gate: GateInfo | None = None
    next_action: str
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Operator actions on the run, oldest first: action (retry, skip, cancel), by, at, steps, reason.",
    )


class RunSummary(BaseModel):
    run_id: str
    status: str
    created_at: float
    usage: Usage
    error: ErrorInfo | None
    tags: dict[str, str]


class RunList(BaseModel):
    runs: list[RunSummary]


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
        sla_at=gate.sla_at,
        on_timeout=gate.on_timeout,
        status=gate.status,
        decision=gate.decision,
        decided_by=gate.decided_by,
        decided_at=gate.decided_at,
        comment=gate.comment,
        decided_payload=gate.decided_payload,
        opened_by=gate.opened_by,
        history=gate.history,
        created_at=gate.created_at,
    )


def gate_info(gate: GateRecord) -> GateInfo:
    return GateInfo(
        gate_id=gate.id, title=gate.title, approvers=gate.current_approvers, sla_at=gate.sla_at, status=gate.status
    )


def run_result(
    record: RunRecord,
    steps: list[StepRecord] | None = None,
    gate: GateRecord | None = None,
    approval_url: str | None = None,
) -> RunResult:
    action = next_action(record)
    if gate is not None:
        who = ", ".join(gate.current_approvers) or "an approver"
        link = f" or the approval link {approval_url}{gate.id}" if approval_url else ""
        action = (
            f"Ask a human ({who}) to decide gate {gate.id} ({gate.title!r}): `podium gates approve {gate.id}` or "
            f"`podium gates reject {gate.id}`{link}; then call wait_run with run_id {record.id!r}."
        )
    return RunResult(
        run_id=record.id,
        status=record.status,
        output=record.output,
        error=None if record.error is None else ErrorInfo(**record.error),
        missing=list(record.missing),
        steps=[step_info(s) for s in steps or []],
        usage=usage(record),
        gate=None if gate is None else gate_info(gate),
        next_action=action,
        history=list(record.history),
    )


def run_summary(record: RunRecord) -> RunSummary:
    return RunSummary(
        run_id=record.id,
        status=record.status,
        created_at=record.created_at,
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
