"""Conditional routing: evaluate ``on`` (JMESPath) and run the matching case, or the default."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from patterns.base import NodeRunner
from patterns.errors import InvalidStep, clip, describe_path
from patterns.expressions import ExpressionError, compile_expression, step_error
from patterns.state import Scope
from patterns.steps import MAX_CASE_KEY_CHARS, RouteStep, ToolStep, join, route_segment
from storage.jsonshape import shape

CASES_SHOWN = 10


def case_key(value: Any) -> str | None:
    """How a routed value names a case: strings as they are, anything else as its JSON text (``true``, ``3``).
    None for a value too large to name any case (a case key has at most ``MAX_CASE_KEY_CHARS`` characters)."""
    if isinstance(value, str):
        return value
    size, depth = shape(value, MAX_CASE_KEY_CHARS, MAX_CASE_KEY_CHARS)
    if size > MAX_CASE_KEY_CHARS or depth > MAX_CASE_KEY_CHARS:
        return None
    return json.dumps(value, separators=(",", ":"))


def _listing(cases: dict[str, Any]) -> str:
    shown = ", ".join(repr(clip(k, 60)) for k in list(cases)[:CASES_SHOWN])
    return shown + (f" and {len(cases) - CASES_SHOWN} more" if len(cases) > CASES_SHOWN else "")


async def run_route(runner: NodeRunner, step: RouteStep, path: str, value: Any, scope: Scope) -> Any:
    spec = step.route
    inner = dataclasses.replace(scope, input=value, prev=None)
    try:
        routed = compile_expression(spec.on).search(runner.state.context(inner))
    except ExpressionError as exc:
        raise step_error(exc, path, "route `on`") from None
    key = case_key(routed)
    if key is not None and key in spec.cases:
        chosen, segment = spec.cases[key], route_segment(key)
    elif spec.default is not None:
        chosen, segment = spec.default, "default"
    else:
        gave = repr(clip(key)) if key is not None else f"a {type(routed).__name__} too large to name a case"
        raise InvalidStep(
            f"step {describe_path(path)}: route on {clip(spec.on)!r} gave {gave}, which matches no case "
            f"({_listing(spec.cases)}) and there is no default",
            step=path,
        )
    state = runner.state
    if isinstance(chosen, ToolStep) and segment != "default" and spec.default is not None:
        tool = state.specs.get(chosen.tool)
        if tool is not None and state.breakers is not None and state.breakers.is_open(tool):
            # a case whose tool is not being called now: the default takes it, and the route's record says so
            state.update(
                path, attempts=({"case": key, "taken": "default", "because": "circuit_open", "tool": tool.ref},)
            )
            state.tell(
                "route", "warning", f"the circuit breaker of {tool.ref} is open: case {key!r} goes to default", path
            )
            chosen, segment = spec.default, "default"
    return await runner.run_node(chosen, join(path, "route", segment), value, inner)
