"""Output and input contracts: JSON Schema validation between steps, with errors that name the field and rule."""

from __future__ import annotations

import math
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from patterns.errors import ContractViolation, LimitExceeded, describe_path
from registry.models import ToolSpec
from storage.records import dumps


_validators: dict[tuple[str, str, str], Draft202012Validator] = {}


def _validator(spec: ToolSpec, which: str, schema: dict[str, Any]) -> Draft202012Validator:
    """One compiled validator per published name@version and side (versions are immutable)."""
    key = (spec.name, spec.version, which)
    validator = _validators.get(key)
    if validator is None:
        validator = _validators[key] = Draft202012Validator(schema)
    return validator


def _field(error: ValidationError) -> str:
    location = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return location.lstrip(".") or "(whole value)"


def check(spec: ToolSpec, which: str, value: Any, path: str) -> None:
    """Raise ``ContractViolation`` if ``value`` breaks ``spec``'s input or output schema."""
    schema = spec.input_schema if which == "input" else spec.output_schema
    if not schema:
        return
    validator = _validator(spec, which, schema)
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return
    # best_match picks the most relevant error when several rules fail
    error = best_match(validator.iter_errors(value)) or error
    raise ContractViolation(
        f"step {describe_path(path)}: {which} of {spec.ref} breaks its schema at field {_field(error)}: "
        f"{error.message} (rule: {error.validator})",
        step=path,
    )


def to_json(value: Any, path: str, what: str, max_bytes: int) -> str:
    """Serialise a payload, enforcing JSON-ness and the payload limit (the caller names ``what`` it is)."""
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise ContractViolation(f"step {describe_path(path)}: {what} is not JSON data: {exc}", step=path) from None
    if len(text) > max_bytes and len(text.encode()) > max_bytes:
        raise LimitExceeded(
            "max_payload_bytes", max_bytes, f"{what} of step {describe_path(path)} is {len(text.encode())} bytes",
            step=path,
        )
    return text


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
