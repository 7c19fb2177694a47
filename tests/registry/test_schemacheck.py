"""The quick schema check never accepts what jsonschema refuses, and refusals carry jsonschema's message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from jsonschema import Draft202012Validator

from registry.schemacheck import SchemaCheck, compile_quick, schema_problem

# -- values and schemas of the supported part, and of what lies just outside it ---------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from([0.0, 1.0, -2.0, 3.5]),
    st.text(max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4)
    ),
    max_leaves=12,
)
type_names = st.sampled_from(["null", "boolean", "integer", "number", "string", "array", "object"])


def leaf_schemas() -> st.SearchStrategy[dict[str, Any]]:
    numbers = st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False))
    return st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(type_names, st.lists(type_names, min_size=1, max_size=3, unique=True)),
            "enum": st.lists(scalars, min_size=1, max_size=4),
            "const": scalars,
            "minimum": numbers,
            "maximum": numbers,
            "exclusiveMinimum": numbers,
            "exclusiveMaximum": numbers,
            "minLength": st.integers(0, 3),
            "maxLength": st.integers(0, 3),
            "minItems": st.integers(0, 3),
            "maxItems": st.integers(0, 3),
            "description": st.text(max_size=5),
            "format": st.sampled_from(["date", "email", "uri"]),
        },
    )


schemas = st.recursive(
    st.one_of(leaf_schemas(), st.booleans()),
    lambda inner: st.one_of(
        st.builds(lambda base, items: {**base, "items": items}, leaf_schemas(), inner),
        st.builds(
            lambda base, props, required, extra: {
                **base,
                "properties": props,
                "required": required,
                **({} if extra is None else {"additionalProperties": extra}),
            },
            leaf_schemas(),
            st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
            st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=2, unique=True),
            st.one_of(st.none(), st.booleans(), inner),
        ),
    ),
    max_leaves=6,
)


@settings(max_examples=1500, deadline=None)
@given(schema=schemas, value=values)
def test_a_quick_yes_is_always_a_jsonschema_yes(schema: Any, value: Any) -> None:
    quick = compile_quick(schema)
    valid = Draft202012Validator(schema).is_valid(value)
    if quick is not None and quick(value):
        assert valid, (schema, value)


@settings(max_examples=500, deadline=None)
@given(schema=schemas, value=values)
def test_the_check_agrees_with_jsonschema_and_names_the_problem(schema: Any, value: Any) -> None:
    check = SchemaCheck.of(schema) if isinstance(schema, dict) else None
    if check is None:
        return
    assert check.problem(value) == schema_problem(Draft202012Validator(schema), value)


VALUE = {
    "type": "object",
    "properties": {"value": {"type": "integer", "minimum": 0}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["value"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("value", "quick"),
    [
        ({"value": 1}, True),
        ({"value": 2.0}, True),  # an integer, as JSON Schema counts them
        ({"value": 1, "tags": ["a", "b"]}, True),
        ({"value": True}, False),  # a boolean is not an integer
        ({"value": -1}, False),
        ({}, False),
        ({"value": 1, "other": 2}, False),
        ({"value": 1, "tags": ["a", 3]}, False),
        ([1], False),
    ],
)
def test_a_typical_tool_schema_is_checked_quickly(value: Any, quick: bool) -> None:
    predicate = compile_quick(VALUE)
    assert predicate is not None and predicate(value) is quick
    assert (SchemaCheck.of(VALUE).problem(value) is None) is quick


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "^a"},
        {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
        {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}},
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
        {"type": "array", "prefixItems": [{"type": "string"}]},
        {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        False,
    ],
)
def test_a_schema_outside_the_quick_part_is_left_to_jsonschema(schema: Any) -> None:
    assert compile_quick(schema) is None


def test_a_refusal_names_the_field_and_rule_as_jsonschema_does() -> None:
    problem = SchemaCheck.of(VALUE).problem({"value": "seven"})
    assert problem == "at field value: 'seven' is not of type 'integer' (rule: type)"
