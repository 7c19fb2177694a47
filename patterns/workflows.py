"""Workflows as the engine plans them: a published step tree, its own limits, the tools it may use, and schemas
that must line up with the steps at either end.

``plan_workflow`` is what a run of a workflow starts from, and what ``validate(workflow=...)`` and publishing a
workflow check: the step tree parses and resolves (``patterns.planning``), within the server's limits lowered by
the workflow's and the caller's; every tool it resolves is one its ``allowed_tools`` allow; and ``problems`` lists
where the workflow's input schema cannot satisfy its first tool step, or its last tool step cannot produce what its
output schema requires.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from patterns.errors import ContractViolation, InvalidStep, describe_path
from patterns.limits import Limits
from patterns.planning import WORKFLOW_LOCK_PREFIX, Plan, RunOptions, plan
from patterns.steps import AnyStep, ChainStep, ToolStep, WorkflowStep, children, parse_step
from patterns.validate import produces, required
from registry import Registry, WorkflowSpec
from registry.errors import RegistryError
from registry.resolve import parse_ref


def _lowered(workflow: dict[str, int | float] | None, asked: dict[str, Any] | None) -> dict[str, Any] | None:
    """The caller's limits, each lowered further to the workflow's where it sets one."""
    if not workflow:
        return asked
    merged: dict[str, Any] = dict(asked or {})
    for name, value in workflow.items():
        merged[name] = value if name not in merged else min(merged[name], value)
    return {name: int(v) if isinstance(v, float) and v.is_integer() else v for name, v in merged.items()}


async def plan_workflow(spec: WorkflowSpec, options: RunOptions, server: Limits, registry: Registry) -> Plan:
    """The plan of a run of ``spec``, with its lock holding the workflow's version.

    Raises:
        InvalidStep, LimitExceeded, UnknownTool: as ``plan``, or a tool its ``allowed_tools`` exclude.
    """
    lowered = dataclasses.replace(options, limits=_lowered(spec.limits, options.limits))
    try:
        planned = await plan(spec.step, lowered, server, registry)
    except InvalidStep as exc:
        raise type(exc)(f"workflow {spec.ref}: {exc.message}", step=exc.step) from None
    for ref, tool in planned.specs.items():
        if not spec.allows(tool.name, tool.version):
            path = planned.facts.refs[ref]
            allowed = ", ".join(spec.allowed_tools or ())
            raise InvalidStep(
                f"workflow {spec.ref}: step {describe_path(path)} uses {tool.ref}, which its allowed_tools "
                f"({allowed}) do not allow",
                step=path,
            )
    return planned


def workflow_lock(spec: WorkflowSpec, planned: Plan) -> dict[str, str]:
    """What a run of ``spec`` pins: every tool version it resolved, and the workflow's own version."""
    return {**planned.lock, f"{WORKFLOW_LOCK_PREFIX}{spec.name}": spec.version}


def _ends(step: AnyStep) -> tuple[ToolStep | None, ToolStep | None]:
    """The tool steps that take the run's input and that give its output, where the tree says plainly which."""
    if isinstance(step, ToolStep):
        return step, step
    if isinstance(step, ChainStep) and step.chain:
        first, _ = _ends(step.chain[0])
        _, last = _ends(step.chain[-1])
        return first, last
    return None, None


def problems(spec: WorkflowSpec, planned: Plan) -> list[str]:
    """Where the workflow's schemas do not line up with its steps, and the chain links that do not (``Plan``)."""
    found = list(planned.schema_gaps())
    first, last = _ends(planned.step)
    if first is not None and not first.has_input:
        made = produces(spec.input_schema)
        tool = planned.specs[first.tool]
        lacking = [] if made is None else [f for f in required(tool.input_schema) if f not in made]
        if lacking:
            found.append(
                f"the workflow's input_schema does not provide {', '.join(lacking)}, which its first step "
                f"({tool.ref}) requires; add them to input_schema or give that step an `input` template"
            )
    if last is not None and spec.output_schema is not None:
        tool = planned.specs[last.tool]
        made = produces(tool.output_schema)
        lacking = [] if made is None else [f for f in required(spec.output_schema) if f not in made]
        if lacking:
            found.append(
                f"the workflow's output_schema requires {', '.join(lacking)}, which the output of its last step "
                f"({tool.ref}) does not provide"
            )
    return found


def workflow_checker(server: Limits, registry: Registry) -> Callable[[WorkflowSpec], Awaitable[None]]:
    """What publishing a workflow checks first (``Registry.register_file``): that it plans, and that its schemas
    line up with its steps.

    Raises (from the returned function):
        InvalidStep, LimitExceeded, UnknownTool, ContractViolation: naming the workflow and what is wrong.
    """

    async def check(spec: WorkflowSpec) -> None:
        await refuse_cycles(spec, registry)
        planned = await plan_workflow(spec, RunOptions(), server, registry)
        found = problems(spec, planned)
        if found:
            raise ContractViolation(f"workflow {spec.ref}: {'; '.join(found)}")

    return check


def _delegations(step: AnyStep) -> list[str]:
    if isinstance(step, WorkflowStep):
        return [step.workflow]
    return [ref for _segment, child in children(step) for ref in _delegations(child)]


async def refuse_cycles(spec: WorkflowSpec, registry: Registry) -> None:
    """Raise ``InvalidStep`` if ``spec`` starts itself, directly or through the workflows it delegates to (as
    they resolve now), naming the loop; such a run tree would only stop at ``max_run_depth``."""

    async def visit(current: WorkflowSpec, trail: tuple[str, ...]) -> None:
        for ref in _delegations(parse_step(current.step)):
            name = parse_ref(ref).name
            if name in trail:
                loop = " -> ".join((*trail, name))
                raise InvalidStep(f"workflow {spec.ref} starts itself: {loop}; a workflow may not delegate to itself")
            try:
                child = await registry.workflow(ref)
            except RegistryError:
                continue  # planning names what does not resolve
            await visit(child, (*trail, child.name))

    await visit(spec, (spec.name,))
