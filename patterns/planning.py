"""Planning a run: the options a caller sets, the limits in force, and a step tree checked and resolved.

``plan`` takes a raw step tree (JSON data as a caller sent it) through every check that can be made before a run
exists: the tree's bounds (``bounds``), its parse into the step models, its templates, ids, references and the
limits that can be known statically (``validate``), then resolves each tool reference to one registered version.
The result, a ``Plan``, is what the engine starts, or what ``validate`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from patterns.bounds import check_tree_bounds
from patterns.errors import InvalidStep, UnknownTool, describe_path
from patterns.limits import Limits
from patterns.steps import AnyStep, parse_step, step_json
from patterns.validate import TreeFacts, check_tree, schema_gaps
from registry import Registry
from registry.errors import RegistryError
from registry.models import ToolSpec

PLAN_INLINE_NODES = 500  # step trees with more steps are parsed and checked off the event loop


WORKFLOW_LOCK_PREFIX = "workflow:"
"""A run's lock records workflow versions under this prefix (tool references never contain a colon): its own
workflow's, and those of the workflows its delegation steps start."""


@dataclass(frozen=True)
class RunOptions:
    """Per-run options a caller may set. Limits and budgets can only lower the server's limits."""

    idempotency_key: str | None = None
    parent_run_id: str | None = None
    deadline_s: float | None = None
    max_steps: int | None = None
    max_cost: float | None = None
    limits: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    principal: str = "local"


@dataclass(frozen=True)
class Plan:
    """A validated, resolved step tree, ready to start."""

    step: AnyStep
    facts: TreeFacts
    limits: Limits
    specs: dict[str, ToolSpec]
    workflows: dict[str, str] = field(default_factory=dict)
    """The version each workflow reference of a delegation step resolved to."""

    @property
    def lock(self) -> dict[str, str]:
        pinned = {f"{WORKFLOW_LOCK_PREFIX}{ref}": version for ref, version in self.workflows.items()}
        return {**{ref: spec.version for ref, spec in self.specs.items()}, **pinned}

    def schema_gaps(self) -> list[str]:
        """Chain links whose producer's output cannot satisfy the consumer's required input."""
        return schema_gaps(self.step, self.specs)


def effective_limits(server: Limits, options: RunOptions) -> Limits:
    """The server's limits lowered by the caller's ``limits``, budget and deadline (never raised)."""
    asked: dict[str, Any] = dict(options.limits or {})
    for name, value in (
        ("max_steps", options.max_steps),
        ("max_cost_per_run", options.max_cost),
        ("max_run_s", options.deadline_s),
    ):
        if value is not None:
            asked[name] = value if name not in asked else min(asked[name], value)
    try:
        return server.lowered(asked) if asked else server
    except (ValueError, TypeError) as exc:
        raise InvalidStep(f"invalid limits or budget: {' '.join(str(exc).split())}") from None


def steps_option(server: Limits, options: RunOptions, limits: Limits) -> str:
    """Which option sets the ``max_steps`` in force: the caller's budget, the caller's limits, or the server."""
    if limits.max_steps < server.max_steps:
        return "options.budget.max_steps" if options.max_steps == limits.max_steps else "limits.max_steps"
    return "max_steps"


def _parse_and_check(step: Any, limits: Limits, option: str) -> tuple[AnyStep, TreeFacts]:
    tree = parse_step(step)
    if isinstance(step, dict):
        step_json(step)  # the tree is stored as JSON: refuse what JSON cannot carry now, not at create_run
    return tree, check_tree(tree, limits, option)


async def checked_tree(step: Any, limits: Limits, option: str = "max_steps") -> tuple[AnyStep, TreeFacts]:
    """Parse and check a raw step tree within ``limits`` (``option`` names what sets ``max_steps``). A large tree
    (its bounds checked first, cheaply) is parsed and checked in a worker thread, so that the event loop goes on
    serving other requests meanwhile."""
    nodes = check_tree_bounds(step, limits)
    if nodes <= PLAN_INLINE_NODES:
        return _parse_and_check(step, limits, option)
    return await anyio.to_thread.run_sync(_parse_and_check, step, limits, option)


async def plan(step: Any, options: RunOptions, server: Limits, registry: Registry) -> Plan:
    """Check and resolve a raw step tree for a run with ``options`` on a server with ``server`` limits.

    Raises:
        InvalidStep, LimitExceeded, UnknownTool: each naming the step path and what is wrong.
    """
    limits = effective_limits(server, options)
    tree, facts = await checked_tree(step, limits, steps_option(server, options, limits))
    specs: dict[str, ToolSpec] = {}
    for ref, path in facts.refs.items():
        try:
            specs[ref] = await registry.resolve(ref)
        except RegistryError as exc:
            raise UnknownTool(f"step {describe_path(path)}: {exc.message}", step=path) from None
    workflows: dict[str, str] = {}
    for ref, path in facts.workflows.items():
        try:
            workflows[ref] = (await registry.workflow(ref)).version
        except RegistryError as exc:
            raise UnknownTool(f"step {describe_path(path)}: {exc.message}", step=path) from None
    return Plan(tree, facts, limits, specs, workflows)
