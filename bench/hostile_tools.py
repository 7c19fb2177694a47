"""Tools the hostile-input benchmark registers: an echo and a tool whose output is as large as it is asked."""

from __future__ import annotations

from typing import Any


def echo(**kwargs: Any) -> dict[str, Any]:
    """Return the input object as it came."""
    return dict(kwargs)


def blob(size: int) -> dict[str, Any]:
    """An output of about ``size`` bytes of JSON from a tiny input."""
    return {"data": "x" * max(0, size - 12)}
