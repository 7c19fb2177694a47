"""Input templates: JSON values whose ``{"$": "<JMESPath>"}`` leaves are evaluated over the step's context.

The context is ``{input, prev, steps, item, results, feedback, run}``: the enclosing composite's input, the
previous sibling's output in a chain, outputs by step id, the current map item, the results handed to a reduce
step, the last evaluation in refine, and ``{id, input}`` of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from patterns.errors import InvalidStep, describe_path

CONTEXT_NAMES = ("input", "prev", "steps", "item", "results", "feedback", "run")
Template = Callable[[dict[str, Any]], Any]


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> ParsedResult:
    """Compile a JMESPath expression once. Raises ``ValueError`` with the parser's explanation."""
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath {expression!r}: {exc}") from None


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "$" in value


def expressions(value: Any) -> Iterator[str]:
    """Every expression in a template (``{"$": ...}`` leaves, depth first)."""
    if _is_ref(value):
        yield value["$"] if isinstance(value["$"], str) else ""
    elif isinstance(value, dict):
        for item in value.values():
            yield from expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from expressions(item)


def compile_template(value: Any, path: str) -> Template:
    """Compile ``value`` into a function of the context. Raises ``InvalidStep`` naming the step on a bad expression."""
    if _is_ref(value):
        expression = value["$"]
        if not isinstance(expression, str):
            raise InvalidStep(
                f'step {describe_path(path)}: a template reference is {{"$": "<JMESPath>"}}, '
                f"got {type(expression).__name__}",
                step=path,
            )
        try:
            parsed = compile_expression(expression)
        except ValueError as exc:
            raise InvalidStep(f"step {describe_path(path)}: {exc}", step=path) from None
        return parsed.search
    if isinstance(value, dict):
        parts = {k: compile_template(v, path) for k, v in value.items()}
        if not any(_has_refs(v) for v in value.values()):
            return lambda _context: value
        return lambda context: {k: part(context) for k, part in parts.items()}
    if isinstance(value, list):
        items = [compile_template(v, path) for v in value]
        if not any(_has_refs(v) for v in value):
            return lambda _context: value
        return lambda context: [item(context) for item in items]
    return lambda _context: value


def _has_refs(value: Any) -> bool:
    return next(expressions(value), None) is not None


def referenced_step_ids(expression: str) -> set[str]:
    """The ids named as ``steps.<id>`` in an expression (used to check templates before a run starts)."""
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "subexpression":
            kids = node.get("children", [])
            if len(kids) >= 2 and kids[0] == {"type": "field", "children": [], "value": "steps"}:
                second = kids[1]
                if second.get("type") == "index_expression":
                    second = second["children"][0]
                if second.get("type") == "field":
                    found.add(str(second["value"]))
        for child in node.get("children", []):
            if isinstance(child, dict):
                walk(child)

    walk(dict(compile_expression(expression).parsed))
    return found
