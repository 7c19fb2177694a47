"""Tools the tests register: small, real functions whose behaviour the tests can observe."""

from __future__ import annotations

import logging
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


async def slow_once(seconds: float, counter: str, value: Any = None) -> dict[str, Any]:
    """Sleep ``seconds`` on the first invocation counted in ``counter`` only; later invocations return at once."""
    n = _count(counter)
    if n == 1:
        await anyio.sleep(seconds)
    return {"value": value, "calls": n}


async def double_v2(value: float, counter: str | None = None) -> dict[str, Any]:
    """A different implementation registered as a newer version of ``double``."""
    _count(counter)
    return {"value": value * 2, "impl": "v2"}


def blob(size: int) -> dict[str, Any]:
    """An output much bigger than its input."""
    return {"data": "x" * size}


def received(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Accept any input (including none or null) and report what arrived."""
    return {"args": list(args), "kwargs": kwargs}


def blocking_wait(release: str, done: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Block the calling thread until the file ``release`` exists, then write the file ``done``."""
    limit = time.monotonic() + timeout_s
    try:
        while not Path(release).exists():
            if time.monotonic() > limit:
                raise RuntimeError(f"{release} never appeared")
            time.sleep(0.005)
    finally:
        Path(done).write_text("done")
    return {"released": True}


async def release(path: str) -> dict[str, Any]:
    """Create the file ``path`` (lets a ``blocking-wait`` call return)."""
    Path(path).write_text("go")
    return {"released": path}


# --- probes for the pattern tests: calls in flight, and signals between concurrent calls -------------------------

_in_flight: dict[str, int] = {}
_peak: dict[str, int] = {}
_signals: dict[str, anyio.Event] = {}


async def inflight(key: str, seconds: float = 0.05, value: Any = None) -> dict[str, Any]:
    """Count the calls in flight for ``key`` (a name unique to one test); return the most seen at once so far."""
    _in_flight[key] = _in_flight.get(key, 0) + 1
    _peak[key] = max(_peak.get(key, 0), _in_flight[key])
    try:
        await anyio.sleep(seconds)
    finally:
        _in_flight[key] -= 1
    return {"value": value, "peak": _peak[key]}


def _signal(name: str) -> anyio.Event:
    event = _signals.get(name)
    if event is None:
        event = _signals[name] = anyio.Event()
    return event


async def signal_hold(name: str, seconds: float = 0.0, value: Any = None) -> dict[str, Any]:
    """Signal ``name`` (calls waiting on it go on), then stay busy for ``seconds``."""
    _signal(name).set()
    await anyio.sleep(seconds)
    return {"value": value}


async def await_signal(name: str, value: Any = None, fail: bool = False, within: float = 1.0) -> dict[str, Any]:
    """Wait (at most ``within`` seconds) until ``name`` is signalled, then return ``value`` or fail permanently."""
    with anyio.fail_after(within):
        await _signal(name).wait()
    if fail:
        raise PermanentError(f"{name}: failed on purpose")
    return {"value": value}


def pick_score(round: int, scores: list[float], **_: Any) -> dict[str, Any]:
    """The score for ``round`` (1-based) from a fixed list: lets an evaluator's scores go up and down."""
    return {"score": scores[round - 1], "round": round}


def noisy(**kwargs: Any) -> dict[str, Any]:
    """A tool that writes to stdout, as careless tools do; it must never reach the stdio wire."""
    print("chatter from a tool that prints")
    return dict(kwargs)


def nest(depth: int) -> dict[str, Any]:
    """An output whose lists nest ``depth`` deep."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return {"nested": value}


async def chatty(**kwargs: Any) -> dict[str, Any]:
    """A tool that writes a warning to the log while it runs (its line belongs to the run that called it)."""
    logging.getLogger("tests.tools").warning("checked %d fields", len(kwargs))
    return dict(kwargs)
