"""Bounds a step tree must keep before it is parsed, checked on the raw JSON without recursing into it.

Parsing a tree into the step models, and everything after it, costs time proportional to its size and recursion
proportional to its depth, so these are checked first, with early exits, on the data as it arrived:

- at most ``max_tree_nodes`` steps (composites and route cases included);
- composites nested at most ``max_depth`` deep;
- a fan-out at most ``max_fan_out`` branches, a route at most ``max_fan_out`` cases, a static map at most
  ``max_fan_out`` items (chunks);
- every template (``input``, map ``items``, gate ``payload``) and gate ``payload_schema`` nested at most
  ``max_payload_depth`` deep, with no NaN or infinite number.

What the models check (types, ranges, string lengths) and what the planner checks (references, ids, the number of
tool steps against ``max_steps``) come after.
"""

from __future__ import annotations

from typing import Any

from patterns.errors import InvalidStep, LimitExceeded, clip, describe_path
from patterns.limits import Limits
from patterns.steps import KINDS, join, route_segment
from storage.jsonshape import text_deeper_than
from storage.records import dumps

NOT_FINITE = "it holds NaN or an infinity, which JSON cannot carry; use a finite number or null"
_TEMPLATE_FIELDS = {"map_reduce": ("items",), "gate": ("payload", "payload_schema")}
# the child steps of each composite, with the path segments the engine gives them (see ``steps.children``)
_CHILD_STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "fan_out": (("reduce", "fan_out/reduce"),),
    "map_reduce": (("map", "map/*"), ("reduce", "reduce")),
    "route": (("default", "route/default"),),
    "refine": (("generate", "refine/*/generate"), ("evaluate", "refine/*/evaluate")),
}


def _where(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def check_payload(value: Any, what: str, limits: Limits, path: str | None = None) -> str:
    """Raise if ``value`` (JSON data the caller gave: ``what`` names it, ``path`` is its step) holds what JSON
    cannot carry (NaN, an infinity, an integer of thousands of digits) or nests deeper than ``max_payload_depth``.
    Encoded once to find out (that is the cheap way to look at all of it); returns the encoding."""
    where = f"step {describe_path(path)}: {what}" if path is not None else what
    try:
        text = dumps(value)
    except RecursionError:
        text = None
    except (TypeError, ValueError) as exc:
        why = NOT_FINITE if "Out of range float" in str(exc) else clip(str(exc))
        raise InvalidStep(f"{where} is not JSON data: {why}", step=path) from None
    if text is None or text_deeper_than(text, limits.max_payload_depth) is not None:
        raise LimitExceeded(
            "max_payload_depth",
            limits.max_payload_depth,
            f"{where} nests containers more than {limits.max_payload_depth} deep",
            step=path,
        )
    return text


def _kind(node: dict[str, Any]) -> str | None:
    found = [k for k in KINDS if k in node]
    return found[0] if len(found) == 1 else None


def check_tree_bounds(data: Any, limits: Limits) -> int:
    """Raise ``LimitExceeded`` or ``InvalidStep`` at the first bound ``data`` (a raw step tree) breaks; return
    how many steps it has.

    Malformed parts are skipped here and left to the step models, which name them.
    """
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, dict):
            continue
        nodes += 1
        if nodes > limits.max_tree_nodes:
            raise LimitExceeded(
                "max_tree_nodes", limits.max_tree_nodes, f"the step tree has more than {limits.max_tree_nodes} steps"
            )
        kind = _kind(node)
        if "input" in node:
            check_payload(node["input"], "input", limits, path)
        if kind is None or kind == "tool":
            continue
        if depth + 1 > limits.max_depth:
            raise LimitExceeded(
                "max_depth", limits.max_depth, f"step {describe_path(path)} is nested {depth + 1} deep", step=path
            )
        body = node[kind]
        if kind == "chain":
            if isinstance(body, list):
                stack.extend((child, join(path, str(i)), depth + 1) for i, child in enumerate(body))
            continue
        if not isinstance(body, dict):
            continue
        for name in _TEMPLATE_FIELDS.get(kind, ()):
            if name in body:
                check_payload(body[name], f"{kind} {name}", limits, path)
        stack.extend(
            (body[name], join(path, segment), depth + 1) for name, segment in _CHILD_STEPS.get(kind, ()) if name in body
        )
        if kind == "fan_out":
            branches = body.get("branches")
            if isinstance(branches, list):
                _width(len(branches), "branches", path, limits)
                stack.extend((child, join(path, "fan_out", str(i)), depth + 1) for i, child in enumerate(branches))
        elif kind == "route":
            cases = body.get("cases")
            if isinstance(cases, dict):
                _width(len(cases), "cases", path, limits)
                stack.extend(
                    (child, join(path, "route", route_segment(clip(str(key), 60))), depth + 1)
                    for key, child in cases.items()
                )
        elif kind == "map_reduce":
            items, size = body.get("items"), body.get("chunk_size", 1)
            if isinstance(items, list) and isinstance(size, int) and size >= 1:
                _width(-(-len(items) // size), "items" if size == 1 else "chunks of items", path, limits)
    return nodes


def _width(count: int, what: str, path: str, limits: Limits) -> None:
    if count > limits.max_fan_out:
        raise LimitExceeded(
            "max_fan_out", limits.max_fan_out, f"step {describe_path(path)} has {count} {what}", step=path
        )
