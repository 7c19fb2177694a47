"""The shape of JSON values: nesting depth and a floor on the encoded size, measured without recursion.

Payloads come from callers and from tools. A value nested thousands deep, or one whose shared references expand
to gigabytes when encoded (``[x, x]`` doubled twenty times), must be measured before anything recurses into it or
encodes it. Both measures here cost at most what their bounds allow, never what the value would expand to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

# a JSON string literal, written so that the regex engine never backtracks
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def text_depth(text: str) -> int:
    """How deeply the containers of JSON ``text`` nest: ``1`` is 0, ``[1]`` 1, ``{"a": [1]}`` 2."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def text_deeper_than(text: str, limit: int) -> int | None:
    """The nesting depth of JSON ``text`` when it exceeds ``limit``, else None.

    Cheap for the usual payload: a text with no more opening brackets than ``limit`` cannot nest deeper.
    """
    if text.count("[") + text.count("{") <= limit:
        return None
    depth = text_depth(text)
    return depth if depth > limit else None


def _scalar_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    return 1  # a number is at least one digit (and its text is not computed: it may have thousands)


_DONE: Any = object()


class _Frame:
    __slots__ = ("height", "items", "size", "value")

    def __init__(self, value: list[Any] | dict[str, Any]) -> None:
        self.value = value
        self.items: Iterator[Any] = iter(value.items()) if isinstance(value, dict) else iter(value)
        n = len(value)
        self.size = 2 + max(0, n - 1)  # brackets and commas
        self.height = 0


def shape(value: Any, max_size: int, max_depth: int) -> tuple[int, int]:
    """``(size, depth)`` of ``value``: a floor on its compact JSON encoding's length, and its nesting depth.

    The walk stops as soon as the size passes ``max_size`` or the depth passes ``max_depth``; the figures
    returned then exceed that bound (and are not exact). A value shared by several parents is walked once and
    counted for each, so a value built to expand when encoded costs no more to measure than to hold. A cycle
    (impossible in JSON data) reads as nesting deeper than ``max_depth``.
    """
    if not isinstance(value, list | dict):
        return _scalar_size(value), 0
    known: dict[int, tuple[int, int]] = {}
    frames = [_Frame(value)]
    while True:
        frame = frames[-1]
        entry = next(frame.items, _DONE)
        if entry is _DONE:  # the container is done: fold it into its parent
            frames.pop()
            measured = (frame.size, frame.height + 1)
            known[id(frame.value)] = measured
            if not frames:
                return measured
            parent = frames[-1]
            parent.size += measured[0]
            parent.height = max(parent.height, measured[1])
            if parent.size > max_size:
                return parent.size, len(frames)
            continue
        if isinstance(frame.value, dict):
            key, item = entry
            frame.size += len(str(key)) + 3  # "key":
        else:
            item = entry
        if isinstance(item, list | dict):
            seen = known.get(id(item))
            if seen is None:
                if len(frames) >= max_depth:
                    return frame.size, max_depth + 1
                frames.append(_Frame(item))
                continue
            frame.size += seen[0]
            frame.height = max(frame.height, seen[1])
        else:
            frame.size += _scalar_size(item)
        if frame.size > max_size:
            return frame.size, len(frames)
