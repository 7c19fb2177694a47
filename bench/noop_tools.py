"""Tools the benchmarks register: the cheapest possible steps, async and sync."""

from __future__ import annotations

from typing import Any

import anyio


async def noop(**_: Any) -> dict[str, Any]:
    """Does nothing: what remains of a step's cost is the engine's own."""
    return {}


async def sleep20(**_: Any) -> dict[str, Any]:
    """Waits 20 ms without holding the event loop, like an I/O-bound tool call."""
    await anyio.sleep(0.02)
    return {}


def syncwork(value: int) -> dict[str, int]:
    """A plain (not async) step with input and output schemas: run in a worker thread, checked both ways."""
    return {"value": value + 1}
