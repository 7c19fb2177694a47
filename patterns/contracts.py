"""Output and input contracts: JSON Schema validation between steps, with errors that name the field and rule."""

from __future__ import annotations

import math
from typing import Any

from patterns.bounds import check_payload
from patterns.errors import ContractViolation, LimitExceeded, clip, describe_path
from patterns.limits import Limits
from registry.models import ToolSpec
from registry.schemacheck import SchemaCheck, schema_problem
from storage.jsonshape import shape, text_deeper_than
from storage.records import dumps

__all__ = ["check", "check_built", "check_caller_payload", "is_number", "schema_problem", "to_json"]


def check(schema: SchemaCheck | None, spec: ToolSpec, which: str, value: Any, path: str) -> None:
    """Raise ``ContractViolation`` if ``value`` breaks ``spec``'s input or output schema (checked by ``schema``)."""
    if schema is None:
        return
    problem = schema.problem(value)
    if problem is not None:
        raise ContractViolation(
            f"step {describe_path(path)}: {which} of {spec.ref} breaks its schema {problem}", step=path
        )


def to_json(value: Any, path: str, what: str, limits: Limits) -> str:
    """Serialise a payload within the payload limits (``max_payload_bytes``, ``max_payload_depth``); the caller
    names ``what`` it is.

    The value is encoded, then measured. What can make an encoding explode (a template building ``[x, x]``
    twenty levels deep) is measured before, where it is built (``check_built``); every other payload is data that
    came through JSON or from a tool, bounded by the run's stored bytes.
    """
    max_bytes, max_depth = limits.max_payload_bytes, limits.max_payload_depth
    try:
        text = dumps(value)
    except RecursionError:
        raise _too_deep(what, path, max_depth) from None
    except (TypeError, ValueError) as exc:
        raise ContractViolation(
            f"step {describe_path(path)}: {what} is not JSON data: {clip(str(exc))}", step=path
        ) from None
    if len(text) > max_bytes and len(text.encode()) > max_bytes:
        raise LimitExceeded(
            "max_payload_bytes",
            max_bytes,
            f"{what} of step {describe_path(path)} is {len(text.encode())} bytes",
            step=path,
        )
    if text_deeper_than(text, max_depth) is not None:
        raise _too_deep(what, path, max_depth)
    return text


def _too_deep(what: str, path: str, max_depth: int) -> LimitExceeded:
    return LimitExceeded(
        "max_payload_depth",
        max_depth,
        f"{what} of step {describe_path(path)} nests containers more than {max_depth} deep",
        step=path,
    )


def check_built(value: Any, path: str, what: str, limits: Limits) -> None:
    """Refuse a value the engine built (a template's result) that breaks the payload limits, before anything
    encodes it or recurses into it."""
    size, depth = shape(value, limits.max_payload_bytes, limits.max_payload_depth)
    if depth > limits.max_payload_depth:
        raise _too_deep(what, path, limits.max_payload_depth)
    if size > limits.max_payload_bytes:
        raise LimitExceeded(
            "max_payload_bytes",
            limits.max_payload_bytes,
            f"{what} of step {describe_path(path)} is at least {size} bytes",
            step=path,
        )


def check_caller_payload(value: Any, name: str, limits: Limits) -> str:
    """Refuse, as the caller's mistake, a value given with a request (a run's input) that is not JSON data (NaN, an
    infinity, an integer too long to write) or breaks the payload limits. Returns its JSON."""
    text = check_payload(value, name, limits)
    if len(text) * 4 > limits.max_payload_bytes and (size := len(text.encode())) > limits.max_payload_bytes:
        raise LimitExceeded("max_payload_bytes", limits.max_payload_bytes, f"{name} is {size} bytes")
    return text


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
