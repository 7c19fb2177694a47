"""Output and input contracts: JSON Schema validation between steps, with errors that name the field and rule."""

from __future__ import annotations

import math
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from patterns.errors import ContractViolation, LimitExceeded, describe_path
from registry.models import ToolSpec
from storage.records import dumps


def _field(error: ValidationError) -> str:
    location = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return location.lstrip(".") or "(whole value)"


def check(validator: Draft202012Validator | None, spec: ToolSpec, which: str, value: Any, path: str) -> None:
    """Raise ``ContractViolation`` if ``value`` breaks ``spec``'s input or output schema (its ``validator``)."""
    if validator is None:
        return
    problem = schema_problem(validator, value)
    if problem is not None:
        raise ContractViolation(
            f"step {describe_path(path)}: {which} of {spec.ref} breaks its schema {problem}", step=path
        )


def schema_problem(validator: Draft202012Validator, value: Any) -> str | None:
    """``at field F: MESSAGE (rule: R)`` for the most relevant violation, or None when ``value`` is valid."""
    error = best_match(validator.iter_errors(value))  # one pass; the most relevant error when several rules fail
    if error is None:
        return None
    return f"at field {_field(error)}: {error.message} (rule: {error.validator})"


def to_json(value: Any, path: str, what: str, max_bytes: int) -> str:
    """Serialise a payload, enforcing JSON-ness and the payload limit (the caller names ``what`` it is)."""
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise ContractViolation(f"step {describe_path(path)}: {what} is not JSON data: {exc}", step=path) from None
    if len(text) > max_bytes and len(text.encode()) > max_bytes:
        raise LimitExceeded(
            "max_payload_bytes",
            max_bytes,
            f"{what} of step {describe_path(path)} is {len(text.encode())} bytes",
            step=path,
        )
    return text


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
