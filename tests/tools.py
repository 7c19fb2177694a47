"""Tools the tests register: small, real functions whose behaviour the tests can observe."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anyio

from registry import PermanentError


def _count(counter: str | None) -> int:
    """Append one line to ``counter`` (a file) and return how many lines it has: invocations across processes."""
    if not counter:
        return 0
    path = Path(counter)
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


async def noop(**_: Any) -> dict[str, Any]:
    return {}


def echo(**kwargs: Any) -> dict[str, Any]:
    return dict(kwargs)


async def add(a: float, b: float, counter: str | None = None) -> dict[str, Any]:
    _count(counter)
    return {"sum": a + b}


async def double(value: float, counter: str | None = None) -> dict[str, Any]:
    _count(counter)
    return {"value": value * 2}


async def flaky(fail_times: int, counter: str, value: Any = None) -> dict[str, Any]:
    """Fail the first ``fail_times`` calls (counted in the ``counter`` file), then succeed."""
    n = _count(counter)
    if n <= fail_times:
        raise ConnectionError(f"transient failure {n}")
    return {"value": value, "calls": n}


async def broken(reason: str = "broken", counter: str | None = None, **_: Any) -> dict[str, Any]:
    _count(counter)
    raise PermanentError(reason)


async def crash(counter: str | None = None, **_: Any) -> dict[str, Any]:
    _count(counter)
    raise RuntimeError("tool crashed")


async def sleepy(seconds: float, value: Any = None, counter: str | None = None) -> dict[str, Any]:
    _count(counter)
    await anyio.sleep(seconds)
    return {"value": value, "slept": seconds}


def blocking_sleep(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"slept": seconds}


async def wrong_output(**_: Any) -> dict[str, Any]:
    return {"total": "not a number"}


async def unjsonable(**_: Any) -> Any:
    return {"when": object()}


def classify(text: str) -> dict[str, Any]:
    lowered = text.lower()
    for category, words in (("billing", ("invoice", "refund", "charge")), ("outage", ("down", "error", "outage"))):
        if any(w in lowered for w in words):
            return {"category": category, "text": text}
    return {"category": "other", "text": text}


def summarize(results: list[Any]) -> dict[str, Any]:
    present = [r for r in results if r is not None]
    return {"count": len(results), "present": len(present), "missing": len(results) - len(present)}


def total(values: list[dict[str, Any]]) -> dict[str, Any]:
    return {"total": sum(v["value"] for v in values)}


def chunk_sum(items: list[float]) -> dict[str, Any]:
    return {"value": sum(items)}


def draft(text: str, round: int = 0, **_: Any) -> dict[str, Any]:
    """Each round appends a refinement; quality grows with the number of rounds."""
    return {"text": text + "+", "round": round + 1}


def grade(text: str, round: int, **_: Any) -> dict[str, Any]:
    return {"score": min(1.0, round * 0.3), "round": round, "text": text}


def plateau(text: str, round: int, **_: Any) -> dict[str, Any]:
    return {"score": 0.5 + 0.001 * round, "text": text, "round": round}
