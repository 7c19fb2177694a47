"""Measuring JSON without recursing into it: nesting depth from text, and a size floor that counts shared parts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage.jsonshape import shape, text_deeper_than, text_depth
from storage.records import dumps


@pytest.mark.parametrize(
    "value",
    [
        1,
        "text",
        None,
        True,
        [],
        {},
        [1],
        {"a": [1, {"b": None}]},
        [[[]]],
        {"k": "v", "x": [True, False, 1.5, -2]},
        ["[[[", {"a": "]]]{{"}, 'quote " and ['],
    ],  # fmt: skip
)
def test_the_measures_agree_with_the_encoding(value: Any) -> None:
    text = dumps(value)
    size, depth = shape(value, 10**9, 1000)
    assert size <= len(text)  # a floor on the encoded size (numbers count one character)
    assert depth == text_depth(text) == _depth(value)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert text_depth(json.dumps(["[[[[[[", "]]]]]"])) == 1
    assert text_deeper_than(json.dumps({"a": "[" * 500}), 64) is None
    assert text_deeper_than(json.dumps([[[[1]]]]), 3) == 4


def test_a_value_built_to_expand_is_measured_without_expanding_it() -> None:
    doubled: Any = "x"
    for _ in range(40):  # 2**40 leaves if it were written out
        doubled = [doubled, doubled]
    size, depth = shape(doubled, 1_048_576, 64)
    assert size > 1_048_576 and depth <= 64


def test_the_walk_stops_at_the_depth_bound_and_on_a_cycle() -> None:
    deep: Any = 0
    for _ in range(10_000):
        deep = [deep]
    assert shape(deep, 10**9, 64)[1] == 65
    loop: list[Any] = []
    loop.append(loop)
    assert shape(loop, 10**9, 64)[1] > 64
