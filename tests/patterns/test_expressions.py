"""Bounded JMESPath: expressions are checked when compiled, and evaluation stops at its budget."""

from __future__ import annotations

from typing import Any

import pytest

from patterns.expressions import (
    MAX_EVALUATION_OPS,
    MAX_EXPRESSION_CHARS,
    ExpressionError,
    compile_expression,
)


@pytest.mark.parametrize(
    ("text", "limit", "says"),
    [
        pytest.param("x" * (MAX_EXPRESSION_CHARS + 1), "max_expression_chars", "at most 4096", id="long"),
        pytest.param("(" * 600 + "a" + ")" * 600, "max_expression_depth", "32 levels", id="parentheses"),
        pytest.param("a" + " | b" * 40, "max_expression_depth", "32 levels", id="pipes"),
        pytest.param("!" * 1000 + "a", "max_expression_depth", "32 levels", id="negations"),
        pytest.param("nope(a)", None, "unknown function nope()", id="unknown-function"),
        pytest.param("length(a, b)", None, "length() takes 1 argument, not 2", id="too-many"),
        pytest.param("merge()", None, "merge() takes at least 1 argument, not 0", id="too-few"),
        pytest.param("a[", None, "invalid JMESPath", id="syntax"),
    ],
)
def test_a_bad_expression_is_refused_when_compiled(text: str, limit: str | None, says: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_expression(text)
    assert raised.value.limit == limit
    assert says in raised.value.message
    assert len(raised.value.message) < 1000  # the expression is quoted clipped


def test_evaluation_gives_jmespath_results() -> None:
    data = {"input": {"items": [{"a": 3, "b": "x"}, {"a": 1, "b": "y"}]}, "k": "v"}
    assert compile_expression("input.items[*].a").search(data) == [3, 1]
    assert compile_expression("sort_by(input.items, &a)[0].b").search(data) == "y"
    assert compile_expression("{n: length(input.items), k: k}").search(data) == {"n": 2, "k": "v"}
    assert compile_expression("input.items[?a > `2`].b | [0]").search(data) == "x"


def _doubled(times: int) -> Any:
    """A value of 2**times leaves built from shared parts (two such values are equal, but not the same object)."""
    value: Any = "x"
    for _ in range(times):
        value = [value, value]
    return value


@pytest.mark.parametrize(
    ("text", "data"),
    [
        pytest.param("input" + " | [@,@][]" * 20, {"input": [1]}, id="flatten-doubling"),
        pytest.param("input[*].a", {"input": [{"a": 1}] * (MAX_EVALUATION_OPS + 1)}, id="long-projection"),
        pytest.param("to_string(input" + " | [@,@]" * 25 + ")", {"input": "x"}, id="to-string-of-a-doubling"),
        pytest.param("a == b", {"a": _doubled(30), "b": _doubled(30)}, id="comparison"),
        pytest.param("contains(a, b)", {"a": [_doubled(30)], "b": _doubled(30)}, id="contains"),
    ],
)
def test_evaluation_stops_at_its_budget(text: str, data: Any) -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_expression(text).search(data)
    assert raised.value.limit == "max_evaluation_ops"


def test_a_type_error_at_run_time_names_the_function_and_the_types() -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_expression("sort_by(input, &a)").search({"input": {"a": 1}})
    assert raised.value.limit is None
    assert "sort_by() got a value of type object, expected array" in raised.value.message


@pytest.mark.parametrize(
    ("text", "selects"),
    [
        ("steps.a.b", True),
        ("input[0]", True),
        ("a || b", True),
        ("a == `1`", True),
        ("[a, b]", False),
        ("{x: a}", False),
        ("a[*].b", False),
        ("length(a)", False),
        ("`[1, 2]`", False),
        ("a[]", False),
    ],  # fmt: skip
)
def test_an_expression_knows_whether_it_only_selects(text: str, selects: bool) -> None:
    assert compile_expression(text).selects is selects
