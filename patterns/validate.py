"""Checks on a step tree before it runs: templates, ids, references and the limits that can be known statically."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from patterns.errors import InvalidStep, LimitExceeded, describe_path
from patterns.expressions import ExpressionError, compile_expression, step_error
from patterns.limits import Limits
from patterns.steps import (
    AnyStep,
    ChainStep,
    ChildBudget,
    FanOutStep,
    GateStep,
    MapReduceStep,
    RefineStep,
    RouteStep,
    ToolStep,
    WorkflowStep,
    children,
    join,
)
from patterns.templates import compile_template, expressions, referenced_step_ids
from registry.errors import InvalidReference
from registry.models import ToolSpec
from registry.resolve import parse_ref


@dataclass
class TreeFacts:
    """What a static walk learns: tool references (each with the first step using it), ids and the deepest nesting."""

    refs: dict[str, str] = field(default_factory=dict)
    workflows: dict[str, str] = field(default_factory=dict)
    """Workflow references of delegation steps, each with the first step using it."""
    ids: dict[str, str] = field(default_factory=dict)
    depth: int = 0
    references: list[tuple[str, str]] = field(default_factory=list)


def check_tree(root: AnyStep, limits: Limits, steps_option: str = "max_steps") -> TreeFacts:
    """Walk ``root``; raise ``InvalidStep`` or ``LimitExceeded`` naming the step path at the first problem.

    ``steps_option`` names what sets ``limits.max_steps`` (the server's limit, or the caller's budget), for the
    error when the tree cannot fit in it.
    """
    facts = TreeFacts()
    _walk(root, "", 1, limits, facts)
    fewest = fewest_tool_steps(root)
    if fewest > limits.max_steps:
        raise LimitExceeded(
            "max_steps",
            limits.max_steps,
            f"the tree runs at least {fewest} tool steps (every fan-out branch and static map item counts), more "
            f"than {steps_option}={limits.max_steps} allows; "
            + (
                f"raise {steps_option} or split the work into several runs"
                if steps_option != "max_steps"
                else "split the work into several runs"
            ),
        )
    for path, ref_id in facts.references:
        if ref_id not in facts.ids:
            known = ", ".join(sorted(facts.ids)) or "no step has an id"
            raise InvalidStep(
                f"step {describe_path(path)}: template refers to steps.{ref_id}, but no step has id {ref_id!r} "
                f"(ids: {known})",
                step=path,
            )
    return facts


def _expressions(path: str, template: object, facts: TreeFacts) -> None:
    compile_template(template, path)
    for expression in expressions(template):
        facts.references.extend((path, ref_id) for ref_id in referenced_step_ids(expression))


def _tool_ref(path: str, ref: str, limits: Limits, facts: TreeFacts) -> None:
    if ref in facts.refs:
        return
    try:
        name = parse_ref(ref).name
    except InvalidReference as exc:
        raise InvalidStep(f"step {describe_path(path)}: {exc.message}", step=path) from None
    if not limits.allows_tool(name):
        raise LimitExceeded(
            "allowed_tools", list(limits.allowed_tools), f"step {describe_path(path)} calls {name!r}", step=path
        )
    facts.refs.setdefault(ref, path)


def _child_budget(step: WorkflowStep, path: str, limits: Limits) -> None:
    """A delegation step may give its child no more than the run has at all (what is left is known at run time,
    and the child gets the least of both)."""
    asked = step.budget or ChildBudget()
    checks: list[tuple[str, float | None, float | None, str]] = [
        ("max_steps", asked.max_steps, limits.max_steps, "budget.max_steps"),
        ("max_cost_per_run", asked.max_cost, limits.max_cost_per_run, "budget.max_cost"),
        ("max_run_s", step.deadline_s, limits.max_run_s, "deadline_s"),
    ]
    for limit, wanted, has, field_name in checks:
        if wanted is not None and has is not None and wanted > has:
            raise LimitExceeded(
                limit,
                has,
                f"step {describe_path(path)} asks {field_name}={wanted:g} for its child run, more than the run "
                f"has in all ({limit}={has:g}); a child's budget is drawn from its parent's",
                step=path,
            )


def _compile(path: str, what: str, expression: str) -> None:
    try:
        compile_expression(expression)
    except ExpressionError as exc:
        raise step_error(exc, path, what) from None


def _walk(step: AnyStep, path: str, depth: int, limits: Limits, facts: TreeFacts) -> None:
    if not isinstance(step, ToolStep | WorkflowStep):
        facts.depth = max(facts.depth, depth)
        if depth > limits.max_depth:
            raise LimitExceeded(
                "max_depth", limits.max_depth, f"step {describe_path(path)} is nested {depth} deep", step=path
            )
    if step.id is not None:
        if step.id in facts.ids:
            first = describe_path(facts.ids[step.id])
            raise InvalidStep(f"step {describe_path(path)}: id {step.id!r} is already used by step {first}", step=path)
        facts.ids[step.id] = path
    if step.has_input:
        _expressions(path, step.input, facts)
    if isinstance(step, ToolStep):
        _tool_ref(path, step.tool, limits, facts)
        if step.fallback is not None:
            _tool_ref(path, step.fallback, limits, facts)
    elif isinstance(step, WorkflowStep):
        if step.workflow not in facts.workflows:
            try:
                parse_ref(step.workflow)
            except InvalidReference as exc:
                raise InvalidStep(f"step {describe_path(path)}: {exc.message}", step=path) from None
            facts.workflows[step.workflow] = path
        _child_budget(step, path, limits)
    elif isinstance(step, FanOutStep) and len(step.fan_out.branches) > limits.max_fan_out:
        raise LimitExceeded(
            "max_fan_out",
            limits.max_fan_out,
            f"step {describe_path(path)} has {len(step.fan_out.branches)} branches",
            step=path,
        )
    elif isinstance(step, MapReduceStep):
        spec = step.map_reduce
        if "items" in spec.model_fields_set:
            _expressions(path, spec.items, facts)
            if isinstance(spec.items, list):
                chunks = -(-len(spec.items) // spec.chunk_size)
                if chunks > limits.max_fan_out:
                    raise LimitExceeded(
                        "max_fan_out", limits.max_fan_out, f"step {describe_path(path)} maps {chunks} items", step=path
                    )
    elif isinstance(step, GateStep) and "payload" in step.gate.model_fields_set:
        _expressions(path, step.gate.payload, facts)
    elif isinstance(step, RouteStep):
        _compile(path, "route `on`", step.route.on)
    elif isinstance(step, RefineStep):
        _compile(path, "refine `score`", step.refine.score)
        if step.refine.max_iterations > limits.max_iterations:
            raise LimitExceeded(
                "max_iterations",
                limits.max_iterations,
                f"step {describe_path(path)} asks for max_iterations={step.refine.max_iterations}",
                step=path,
            )
    for segment, child in children(step):
        _walk(child, join(path, segment), depth + 1, limits, facts)


def fewest_tool_steps(step: AnyStep) -> int:
    """The fewest tool steps a successful run of ``step`` takes: every branch of a fan-out (the ``quorum``
    cheapest under that strategy), a static map's every item, the cheapest route case, one refine iteration.
    A map over items known only at run time counts as empty. Retries and fallbacks are not steps of their own."""
    if isinstance(step, ToolStep):
        return 1
    if isinstance(step, FanOutStep):
        spec = step.fan_out
        counts = sorted(fewest_tool_steps(b) for b in spec.branches)
        total = sum(counts[: spec.quorum] if spec.strategy == "quorum" and spec.quorum else counts)
        return total + (fewest_tool_steps(spec.reduce) if spec.reduce is not None else 0)
    if isinstance(step, MapReduceStep):
        mr = step.map_reduce
        total = fewest_tool_steps(mr.reduce) if mr.reduce is not None else 0
        if "items" in mr.model_fields_set and isinstance(mr.items, list) and not _has_refs(mr.items):
            chunks = -(-len(mr.items) // mr.chunk_size)
            needed = min(chunks, mr.quorum) if mr.strategy == "quorum" and mr.quorum else chunks
            total += needed * fewest_tool_steps(mr.map)
        return total
    if isinstance(step, RouteStep):
        options = [*step.route.cases.values(), *([step.route.default] if step.route.default else [])]
        return min(fewest_tool_steps(case) for case in options)
    if isinstance(step, RefineStep):
        return fewest_tool_steps(step.refine.generate) + fewest_tool_steps(step.refine.evaluate)
    return sum(fewest_tool_steps(child) for _segment, child in children(step))


def _has_refs(value: Any) -> bool:
    return next(expressions(value), None) is not None


def static_tool_steps(step: AnyStep) -> int | None:
    """How many tool steps the tree runs, when that is known before it runs (no map, route, refine or child
    run)."""
    if isinstance(step, ToolStep):
        return 1
    if isinstance(step, MapReduceStep | RouteStep | RefineStep | WorkflowStep):
        return None
    total = 0
    for _segment, child in children(step):
        count = static_tool_steps(child)
        if count is None:
            return None
        total += count
    return total


def required(schema: dict[str, Any] | None) -> list[str]:
    if not schema or schema.get("type") not in (None, "object"):
        return []
    return [str(name) for name in schema.get("required", [])]


def produces(schema: dict[str, Any] | None) -> set[str] | None:
    """Fields an output schema promises, or None when it does not say (then nothing can be concluded)."""
    if not schema or schema.get("type") not in (None, "object"):
        return None
    fields = set(schema.get("required", [])) | set(schema.get("properties", {}))
    return fields if fields or schema.get("additionalProperties") is False else None


def schema_gaps(root: AnyStep, specs: dict[str, ToolSpec], path: str = "") -> list[str]:
    """Chain links where the producer's output schema cannot satisfy the consumer's required input.

    Only plain links are checked: a consumer with an ``input`` template builds its own input.
    """
    gaps: list[str] = []
    if isinstance(root, ChainStep):
        for index in range(1, len(root.chain)):
            producer, consumer = root.chain[index - 1], root.chain[index]
            if not isinstance(producer, ToolStep) or not isinstance(consumer, ToolStep) or consumer.has_input:
                continue
            made = produces(specs[producer.tool].output_schema)
            if made is None:
                continue
            lacking = [f for f in required(specs[consumer.tool].input_schema) if f not in made]
            if lacking:
                gaps.append(
                    f"step {join(path, str(index))}: {specs[consumer.tool].ref} requires {', '.join(lacking)}, "
                    f"which the output of {specs[producer.tool].ref} (step {join(path, str(index - 1))}) does not "
                    "provide; add an `input` template"
                )
    for segment, child in children(root):
        if "*" not in segment:
            gaps.extend(schema_gaps(child, specs, join(path, segment)))
    return gaps
