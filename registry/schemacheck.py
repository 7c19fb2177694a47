"""A tool's schema as the engine checks it on every step: a quick yes for the common case, jsonschema otherwise.

Most tool schemas use a small part of JSON Schema (types, properties, required, items, enum, bounds). For those,
``quick`` is a plain Python predicate built once from the schema; it answers "valid" in a few microseconds where a
jsonschema pass over the same value costs tens. It is only ever trusted to say yes: when it says no, or the schema
uses anything outside that part, the full jsonschema validator decides and names the problem. So a value is
accepted exactly when jsonschema accepts it, and refused with jsonschema's message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

Predicate = Callable[[Any], bool]

# Keywords that only annotate: they never make a value invalid (``format`` asserts nothing without a format
# checker, and none is configured).
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly",
     "writeOnly", "format"}
)  # fmt: skip
_SCALARS = (str, int, float, bool, type(None))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Predicate] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "number": _is_number,
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _same(value: Any, allowed: Any) -> bool:
    """Strict equality for ``enum``/``const`` on scalars of the same type; anything else is left to jsonschema."""
    return isinstance(allowed, _SCALARS) and type(value) is type(allowed) and value == allowed


def compile_quick(schema: Any) -> Predicate | None:
    """A predicate that returns True only for values ``schema`` accepts, or None when ``schema`` uses a keyword
    outside the supported part (then only jsonschema can tell)."""
    if schema is True:
        return lambda _: True
    if not isinstance(schema, dict):
        return None  # False, or not a schema: jsonschema answers
    if not set(schema) <= _SUPPORTED:
        return None
    rules: list[Predicate] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not all(isinstance(n, str) and n in _TYPES for n in names):
            return None
        checks = [_TYPES[n] for n in names]
        rules.append(checks[0] if len(checks) == 1 else lambda v: any(c(v) for c in checks))
    if "enum" in schema:
        allowed = schema["enum"]
        if not isinstance(allowed, list):
            return None
        rules.append(lambda v: any(_same(v, a) for a in allowed))
    if "const" in schema:
        const = schema["const"]
        rules.append(lambda v: _same(v, const))
    for rule in (_numbers(schema), _strings(schema), _arrays(schema), _objects(schema)):
        if rule is False:
            return None
        if rule is not None:
            rules.append(rule)
    if not rules:
        return lambda _: True
    if len(rules) == 1:
        return rules[0]
    return lambda v: all(rule(v) for rule in rules)


_BOUNDS: dict[str, Callable[[float, float], bool]] = {
    "minimum": lambda v, b: v >= b,
    "maximum": lambda v, b: v <= b,
    "exclusiveMinimum": lambda v, b: v > b,
    "exclusiveMaximum": lambda v, b: v < b,
}
_STRING_BOUNDS: dict[str, Callable[[int, int], bool]] = {
    "minLength": lambda n, b: n >= b,
    "maxLength": lambda n, b: n <= b,
}
_ARRAY_BOUNDS: dict[str, Callable[[int, int], bool]] = {
    "minItems": lambda n, b: n >= b,
    "maxItems": lambda n, b: n <= b,
}
_SUPPORTED = _ANNOTATIONS | {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    *_BOUNDS, *_STRING_BOUNDS, *_ARRAY_BOUNDS,
}  # fmt: skip

# Each builder: None (no keyword of its kind), False (a keyword it cannot check quickly), or a predicate that
# holds for every value the keywords of its kind accept (and for every value of another type).
Built = Predicate | None | Literal[False]


def _numbers(schema: dict[str, Any]) -> Built:
    bounds = [(_BOUNDS[k], schema[k]) for k in _BOUNDS if k in schema]
    if not bounds:
        return None
    if not all(_is_number(b) for _, b in bounds):
        return False
    return lambda v: not _is_number(v) or all(ok(v, b) for ok, b in bounds)


def _strings(schema: dict[str, Any]) -> Built:
    bounds = [(_STRING_BOUNDS[k], schema[k]) for k in _STRING_BOUNDS if k in schema]
    if not bounds:
        return None
    return lambda v: not isinstance(v, str) or all(ok(len(v), b) for ok, b in bounds)


def _arrays(schema: dict[str, Any]) -> Built:
    bounds = [(_ARRAY_BOUNDS[k], schema[k]) for k in _ARRAY_BOUNDS if k in schema]
    item: Predicate | None = None
    if "items" in schema:
        item = compile_quick(schema["items"])
        if item is None:
            return False
    if not bounds and item is None:
        return None
    each = item

    def check(v: Any) -> bool:
        if not isinstance(v, list):
            return True
        return all(ok(len(v), b) for ok, b in bounds) and (each is None or all(each(x) for x in v))

    return check


def _objects(schema: dict[str, Any]) -> Built:
    if not {"properties", "required", "additionalProperties"} & set(schema):
        return None
    properties: dict[str, Predicate] = {}
    for name, sub in (schema.get("properties") or {}).items():
        quick = compile_quick(sub)
        if quick is None:
            return False
        properties[name] = quick
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return False
    extra = schema.get("additionalProperties", True)
    other: Predicate | None
    if extra is True:
        other = None
    elif extra is False:
        other = lambda _: False  # noqa: E731 - one of three cases, named below
    else:
        other = compile_quick(extra)
        if other is None:
            return False

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return True
        for name in required:
            if name not in v:
                return False
        for key, value in v.items():
            rule = properties.get(key, other)
            if rule is not None and not rule(value):
                return False
        return True

    return check


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """A schema compiled for repeated checks: ``problem(value)`` names what is wrong, or is None."""

    validator: Draft202012Validator
    quick: Predicate | None

    @classmethod
    def of(cls, schema: dict[str, Any]) -> SchemaCheck:
        return cls(Draft202012Validator(schema), compile_quick(schema))

    def problem(self, value: Any) -> str | None:
        if self.quick is not None and self.quick(value):
            return None
        return schema_problem(self.validator, value)


def schema_problem(validator: Draft202012Validator, value: Any) -> str | None:
    """``at field F: MESSAGE (rule: R)`` for the most relevant violation, or None when ``value`` is valid."""
    error = best_match(validator.iter_errors(value))  # one pass; the most relevant error when several rules fail
    if error is None:
        return None
    return f"at field {_field(error)}: {error.message} (rule: {error.validator})"


def _field(error: ValidationError) -> str:
    location = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return location.lstrip(".") or "(whole value)"
