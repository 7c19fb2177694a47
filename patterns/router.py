"""Conditional routing: evaluate ``on`` (JMESPath) and run the matching case, or the default."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from patterns.errors import InvalidStep, describe_path
from patterns.state import Scope
from patterns.steps import RouteStep, join, route_segment
from patterns.templates import compile_expression

if TYPE_CHECKING:
    from patterns.runner import Runner


def case_key(value: Any) -> str:
    """How a routed value names a case: strings as they are, anything else as its JSON text (``true``, ``3``)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


async def run_route(runner: Runner, step: RouteStep, path: str, value: Any, scope: Scope) -> Any:
    spec = step.route
    inner = dataclasses.replace(scope, input=value, prev=None)
    key = case_key(compile_expression(spec.on).search(runner.state.context(inner)))
    if key in spec.cases:
        chosen, segment = spec.cases[key], route_segment(key)
    elif spec.default is not None:
        chosen, segment = spec.default, "default"
    else:
        raise InvalidStep(
            f"step {describe_path(path)}: route on {spec.on!r} gave {key!r}, which matches no case "
            f"({', '.join(repr(k) for k in spec.cases)}) and there is no default",
            step=path,
        )
    return await runner.run_node(chosen, join(path, "route", segment), value, inner)
