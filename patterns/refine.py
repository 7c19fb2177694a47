"""Iterative refinement: generate, evaluate, score; stop at the threshold or at a hard limit.

Limits: ``max_iterations`` (never above the server's ``max_iterations``), ``min_improvement`` over the best score
so far, ``time_budget_s`` (an iteration still running when it expires is cancelled) and ``cost_budget`` (no
iteration starts that the last one's cost says would overrun it). The output always has the same shape::

    {"output": <best generated output>, "score": <its score>, "iteration": <its index>,
     "reached_threshold": bool, "iterations": n, "history": [scores...], "stop_reason": "threshold" |
     "max_iterations" | "min_improvement" | "time_budget" | "cost_budget"}
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio

from patterns.base import NodeRunner
from patterns.contracts import is_number
from patterns.errors import ContractViolation, StepFailed, clip, describe_path
from patterns.expressions import ExpressionError, compile_expression, step_error
from patterns.state import Scope
from patterns.steps import RefineStep, join


async def run_refine(runner: NodeRunner, step: RefineStep, path: str, value: Any, scope: Scope) -> Any:
    state = runner.state
    started = anyio.current_time()
    scope_key = join(path, "refine") + "/"
    state.cost_scopes[scope_key] = 0.0
    try:
        return await _loop(runner, step, path, value, scope, scope_key, started)
    finally:
        state.cost_scopes.pop(scope_key, None)


async def _loop(
    runner: NodeRunner, step: RefineStep, path: str, value: Any, scope: Scope, scope_key: str, started: float
) -> dict[str, Any]:
    spec = step.refine
    state = runner.state
    score_expr = compile_expression(spec.score)
    history: list[float] = []
    best: tuple[Any, float, int] | None = None
    last_output: Any = value
    feedback: Any = None
    last_cost = 0.0
    reason = "max_iterations"
    for iteration in range(spec.max_iterations):
        spent = state.cost_scopes[scope_key]
        if spec.cost_budget is not None and iteration > 0 and spent + last_cost > spec.cost_budget:
            reason = "cost_budget"
            break
        remaining = None if spec.time_budget_s is None else spec.time_budget_s - (anyio.current_time() - started)
        if remaining is not None and remaining <= 0:
            reason = "time_budget"
            break
        inner = dataclasses.replace(scope, input=value, prev=None, feedback=feedback)
        before = state.cost_scopes[scope_key]
        base = join(path, "refine", str(iteration))
        with anyio.CancelScope(
            deadline=anyio.current_time() + (remaining if remaining is not None else float("inf"))
        ) as cs:
            output = await runner.run_node(spec.generate, join(base, "generate"), last_output, inner)
            evaluation = await runner.run_node(spec.evaluate, join(base, "evaluate"), output, inner)
        if cs.cancelled_caught:
            runner.finish_subtree(base, StepFailed(f"step {describe_path(base)}: time budget spent", type="timeout"))
            reason = "time_budget"
            break
        last_cost = state.cost_scopes[scope_key] - before
        try:
            score = score_expr.search(evaluation)
        except ExpressionError as exc:
            raise step_error(exc, join(base, "evaluate"), "refine `score`") from None
        if not is_number(score):
            gave = clip(repr(score)) if not isinstance(score, list | dict) else f"a {type(score).__name__}"
            raise ContractViolation(
                f"step {describe_path(path)}: score {clip(spec.score)!r} over the evaluation gave {gave}, not a number",
                step=join(base, "evaluate"),
            )
        score = float(score)
        history.append(score)
        previous_best = best[1] if best is not None else None
        if best is None or score > best[1]:
            best = (output, score, iteration)
        if score >= spec.threshold:
            reason = "threshold"
            break
        if previous_best is not None and spec.min_improvement > 0 and score - previous_best < spec.min_improvement:
            reason = "min_improvement"
            break
        if spec.cost_budget is not None and state.cost_scopes[scope_key] >= spec.cost_budget:
            reason = "cost_budget"
            break
        last_output, feedback = output, evaluation
    if best is None:
        raise StepFailed(
            f"step {describe_path(path)}: refine stopped ({reason}) before any attempt was scored",
            step=path,
            type="timeout" if reason == "time_budget" else "limit_exceeded",
        )
    output, score, index = best
    return {
        "output": output,
        "score": score,
        "iteration": index,
        "reached_threshold": score >= spec.threshold,
        "iterations": len(history),
        "history": history,
        "stop_reason": reason,
    }
