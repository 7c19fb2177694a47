"""Input templates: JSON values whose ``{"$": "<JMESPath>"}`` leaves are evaluated over the step's context.

The context is ``{input, prev, steps, item, results, feedback, run}``: the enclosing composite's input, the
previous sibling's output in a chain, outputs by step id, the current map item, the results handed to a reduce
step, the last evaluation in refine, and ``{id, input}`` of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from patterns.expressions import ExpressionError, compile_expression, step_error

Template = Callable[[dict[str, Any]], Any]
"""A compiled template: a function of the context. Raises ``ExpressionError`` when an expression fails."""


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
    """Compile ``value`` into a function of the context. Raises ``InvalidStep`` (or ``LimitExceeded``) naming the
    step on a bad expression."""
    if _is_ref(value):
        expression = value["$"]
        if not isinstance(expression, str):
            raise step_error(
                ExpressionError(
                    f'a template reference is {{"$": "<JMESPath>"}}, got {{"$": {type(expression).__name__}}}'
                ),
                path,
            )
        try:
            return compile_expression(expression).search
        except ExpressionError as exc:
            raise step_error(exc, path) from None
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


def amplifies(value: Any) -> bool:
    """Whether a template's value can be larger than the values it reads: it holds several references, or one whose
    expression builds new lists or objects (``[input, input]``). Such a value is measured before it is encoded."""
    refs = list(islice(expressions(value), 2))
    if len(refs) != 1:
        return len(refs) > 1
    return not compile_expression(refs[0]).selects


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

    walk(compile_expression(expression).tree)
    return found
