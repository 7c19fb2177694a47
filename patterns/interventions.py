"""An operator's hand on a run that stopped: retry its interrupted or failed steps, or skip a step with a given output.

Both reopen the run (``running``, no lease) so that the next engine to look resumes it over its records: completed
steps are not invoked again. Both append to the run's history who did what, when and why, and both are a single
compare-and-set on the run, so two operators acting at once cannot both win.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patterns import contracts
from patterns.errors import OperatorError, RunCancelled, describe_path
from patterns.limits import Limits
from registry import Registry
from storage import STEP_CANCELLED, STEP_COMPLETED, STEP_STARTED, RunRecord, StepRecord, StepWrite, dumps

if TYPE_CHECKING:
    from storage import Store

REOPENABLE = ("needs_attention", "failed", "timed_out")
"""The run statuses an operator can retry or skip from."""


@dataclass(frozen=True)
class Reopened:
    """A run handed back for execution: the run as reopened, and the steps the operator retried or skipped."""

    run: RunRecord
    steps: tuple[str, ...]


def _stopped(record: RunRecord, action: str) -> None:
    rid = record.id
    if record.status in ("pending", "running"):
        raise OperatorError(
            f"run {rid} is {record.status}; {action} applies to a run that stopped ({', '.join(REOPENABLE)}). "
            f"To stop it: podium runs cancel {rid}"
        )
    if record.status == "waiting":
        raise OperatorError(f"run {rid} waits for a decision at a gate: decide it with `podium gates approve|reject`")
    if record.status not in REOPENABLE:
        raise OperatorError(
            f"run {rid} is {record.status}; only a run that is {', '.join(REOPENABLE)} can be retried or skipped"
        )
    error = record.error or {}
    if record.status == "timed_out" and error.get("type") != "limit_exceeded":
        raise OperatorError(
            f"run {rid} timed out at gate {describe_path(str(error.get('step')))}: the gate's on_timeout decided "
            "the run, so it cannot be reopened; start a new run"
        )


def _unfinished(records: Sequence[StepRecord]) -> str:
    """The tool steps that did not complete, as an operator would pick among them."""
    listed = [
        f"{describe_path(r.path)} ({_name(r)}, {r.status})"
        for r in records
        if r.status != STEP_COMPLETED and r.kind == "tool"
    ]
    return ", ".join(listed) or "none"


def _name(record: StepRecord) -> str:
    return f"{record.tool}@{record.version}" if record.kind == "tool" else record.kind


def _find(records: Sequence[StepRecord], run_id: str, path: str) -> StepRecord:
    for record in records:
        if record.path == path:
            if record.status == STEP_COMPLETED:
                raise OperatorError(
                    f"step {describe_path(path)} of run {run_id} completed; only steps that did not complete can be "
                    f"retried or skipped: {_unfinished(records)}"
                )
            return record
    raise OperatorError(
        f"run {run_id} has no step at path {path!r}; the steps that did not complete are: {_unfinished(records)}"
    )


def _rewrite(record: StepRecord, **changes: Any) -> StepWrite:
    write = StepWrite(
        run_id=record.run_id,
        path=record.path,
        kind=record.kind,
        status=record.status,
        started_at=record.started_at,
        tool=record.tool,
        version=record.version,
        input_json=None if record.input is None else dumps(record.input),
        output_json=record.output_json,
        error=record.error,
        missing=tuple(record.missing),
        attempts=tuple(record.attempts),
        cost=record.cost,
        finished_at=record.finished_at,
    )
    return dataclasses.replace(write, **changes)


def _deadline(record: RunRecord, now: float) -> float | None:
    """A reopened run gets its full ``max_run_s`` again, counted from now."""
    max_run_s = record.limits.get("max_run_s")
    return None if max_run_s is None else now + float(max_run_s)


async def retry(store: Store, run_id: str, *, by: str, step: str | None = None, reason: str | None = None) -> Reopened:
    """Reopen a stopped run so that its steps that did not complete run again.

    An interrupted non-idempotent step (the reason a run is ``needs_attention``) is invoked again only because an
    operator said so: ``step`` limits that to the step at that path (and the steps under it); by default every
    interrupted step is retried. Failed and cancelled steps run again in any case; completed ones never do.

    Raises:
        OperatorError: the run is not stopped, ``step`` names no unfinished step, or nothing is interrupted there.
        RunChanged: the run changed while this was being done; nothing was changed.
    """
    record = await store.get_run(run_id)
    _stopped(record, "retry")
    records = await store.get_steps(run_id)
    scope: Sequence[StepRecord] = records
    if step is not None:
        _find(records, run_id, step)
        scope = [r for r in records if r.path == step or r.path.startswith(f"{step}/") or not step]
    interrupted = [r for r in scope if r.kind == "tool" and r.status == STEP_STARTED]
    if record.status == "needs_attention" and not interrupted:
        waiting = [r for r in records if r.kind == "tool" and r.status == STEP_STARTED]
        where = ", ".join(f"{describe_path(r.path)} ({_name(r)})" for r in waiting) or "none"
        raise OperatorError(
            f"no interrupted step at {describe_path(step or '')} in run {run_id}; the interrupted steps are: {where}"
        )
    now = store.now()
    writes = [
        _rewrite(
            r,
            status=STEP_CANCELLED,
            error=RunCancelled(f"interrupted while it ran; {by} chose to run it again", step=r.path).to_dict(),
            finished_at=now,
        )
        for r in interrupted
    ]
    paths = tuple(r.path for r in interrupted)
    entry = {"action": "retry", "by": by, "steps": list(paths), "reason": reason, "from_status": record.status}
    reopened = await store.reopen_run(record, entry, writes, _deadline(record, now))
    return Reopened(reopened, paths)


async def skip(
    store: Store,
    registry: Registry,
    run_id: str,
    *,
    step: str,
    output: Any,
    by: str,
    reason: str | None = None,
) -> Reopened:
    """Record the tool step at ``step`` as completed with ``output`` (checked against the tool's output schema) and
    reopen the run, so that it goes on from there without invoking that step.

    Raises:
        OperatorError: the run is not stopped, or ``step`` is not an unfinished tool step.
        ContractViolation: ``output`` does not satisfy the output schema of the step's tool version.
        RunChanged: the run changed while this was being done; nothing was changed.
    """
    record = await store.get_run(run_id)
    _stopped(record, "skip")
    target = _find(await store.get_steps(run_id), run_id, step)
    if target.kind != "tool" or target.tool is None or target.version is None:
        what = "decide its gate instead" if target.kind == "gate" else "skip the tool step inside it, or retry"
        raise OperatorError(f"step {describe_path(step)} is a {target.kind} step; skip works on a tool step: {what}")
    spec = await registry.get(target.tool, target.version)
    limits = Limits.model_validate(record.limits)
    output_json = contracts.to_json(output, step, f"the output given for {spec.ref}", limits)
    contracts.check(registry.validator(spec, "output"), spec, "output", output, step)
    now = store.now()
    write = _rewrite(target, status=STEP_COMPLETED, output_json=output_json, error=None, finished_at=now)
    entry = {"action": "skip", "by": by, "steps": [step], "output": output, "reason": reason}
    reopened = await store.reopen_run(record, {**entry, "from_status": record.status}, [write], _deadline(record, now))
    return Reopened(reopened, (step,))
