"""Tools the crash soak (``bench/soak.py``) registers: real work, and a record of every invocation.

Each call appends a ``start`` line and, when it returns, an ``end`` line to the invocation log named in its input:
one JSON object per line with the run id, the step path, the tool, the process id and the time. Lines are single
``O_APPEND`` writes, so the lines of servers that follow one another (or overlap) never interleave.

The idempotent tools sleep for the time their input gives (the soak draws it) and compute a number from their
input. ``post_ledger_entry`` is the side effect that must not happen twice: it appends one entry, holding the
output it returns, to a ledger file, and returns soon after.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from typing import Any

import anyio


def append_line(path: str, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line in a single ``O_APPEND`` write."""
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _log(log: str, run: str, step: str, tool: str, event: str, output: Any = None) -> None:
    record = {"run": run, "step": step, "tool": tool, "pid": os.getpid(), "event": event, "t": time.time()}
    if output is not None:
        record["output"] = output
    append_line(log, record)


async def _idempotent(tool: str, run: str, step: str, log: str, seconds: float, value: int) -> dict[str, Any]:
    _log(log, run, step, tool, "start")
    await anyio.sleep(seconds)
    output = {"value": value}
    _log(log, run, step, tool, "end", output)
    return output


def primes_below(n: int) -> int:
    """How many primes are below ``n`` (a sieve of Eratosthenes)."""
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for p in range(2, int(n**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, n, p)))
    return sum(sieve)


def collatz_steps(n: int) -> int:
    """Steps of the Collatz map from ``n`` (at least 1) down to 1."""
    steps = 0
    while n > 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def digest(n: int) -> int:
    """The first 24 bits of the SHA-256 of ``n`` written in decimal."""
    return int(hashlib.sha256(str(n).encode()).hexdigest()[:6], 16)


async def count_primes(run: str, step: str, log: str, seconds: float, value: int) -> dict[str, Any]:
    """``{"value": primes below value % 20000 + 100}``."""
    return await _idempotent("count-primes", run, step, log, seconds, primes_below(value % 20_000 + 100))


async def collatz(run: str, step: str, log: str, seconds: float, value: int) -> dict[str, Any]:
    """``{"value": Collatz steps from value % 100000 + 1}``."""
    return await _idempotent("collatz", run, step, log, seconds, collatz_steps(value % 100_000 + 1))


async def hash_value(run: str, step: str, log: str, seconds: float, value: int) -> dict[str, Any]:
    """``{"value": the first 24 bits of SHA-256(value)}``."""
    return await _idempotent("hash-value", run, step, log, seconds, digest(value))


async def total(run: str, step: str, log: str, seconds: float, values: list[int]) -> dict[str, Any]:
    """``{"value": sum(values)}``: the reduce step of a fan-out."""
    return await _idempotent("total", run, step, log, seconds, sum(values))


async def post_ledger_entry(run: str, step: str, log: str, seconds: float, ledger: str, amount: int) -> dict[str, Any]:
    """Append one entry to the ledger and return it: ``{"entry": id, "value": amount}``. Not idempotent.

    It takes ``seconds``, half before posting and half after, so that a kill can fall on either side of the post.
    """
    _log(log, run, step, "post-ledger-entry", "start")
    await anyio.sleep(seconds / 2)
    output = {"entry": uuid.uuid4().hex, "value": amount}
    append_line(ledger, {"run": run, "step": step, "pid": os.getpid(), "t": time.time(), "output": output})
    await anyio.sleep(seconds / 2)
    _log(log, run, step, "post-ledger-entry", "end", output)
    return output
