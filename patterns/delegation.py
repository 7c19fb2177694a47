"""Delegation: a ``{"workflow": "name@spec"}`` step runs a published workflow as a child run and takes its output.

The engine starts the child (``RunState.delegate``): its own run id, ``parent_run_id`` the parent, an idempotency
key made of the parent's run id and the step's path (so a replayed or recovered parent re-attaches to the child it
started instead of starting another), and a budget drawn from what the parent has left. The step waits for the
child to finish: a child parked at a gate or waiting for an operator (``needs_attention``) keeps the parent
waiting, never failing. A child that succeeds gives its output; one that ends ``partial`` gives its output and
leaves the step named in the parent's ``missing``; any other ending fails the step (``critical: false`` then turns
it into a gap, as for a tool).
"""

from __future__ import annotations

from typing import Any

from patterns.base import NodeRunner
from patterns.errors import ERROR_TYPES, StepFailed, describe_path
from patterns.state import Scope
from patterns.steps import WorkflowStep


async def run_delegation(runner: NodeRunner, step: WorkflowStep, path: str, value: Any, scope: Scope) -> Any:
    state = runner.state
    if state.delegate is None:
        raise StepFailed(f"step {describe_path(path)}: this engine does not start child runs", step=path)
    child = await state.delegate(path, step, value)
    if child.status == "succeeded":
        return child.output
    if child.status == "partial":
        state.missing.append(path)
        state.tell("gap", "warning", f"child run {child.id} of {step.workflow} ended partial", path)
        return child.output
    error = child.error or {}
    kind = error.get("type")
    failed = StepFailed(
        f"step {describe_path(path)}: child run {child.id} ({step.workflow}) ended {child.status}: "
        f"{error.get('message', 'no error recorded')}",
        step=path,
    )
    if kind in ERROR_TYPES and kind not in ("cancelled", "internal"):
        failed.type = kind
    raise failed
