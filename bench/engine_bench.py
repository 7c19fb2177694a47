"""What a durable step costs in Podium's engine, next to the floors it is measured against.

Run from the repository root::

    python bench/engine_bench.py [--n 1000] [--reps 5] [--quick]

All measurements run in one process, interleaved (a, b, c, a, b, c, ...), and the table reports medians:

- chain of N no-op async steps, and fan-out of N no-op branches, each three ways:
  (a) raw anyio, no persistence; (b) the stdlib ``sqlite3`` module on the event-loop thread, WAL,
  ``synchronous=NORMAL``, one INSERT + COMMIT per step (the floor for durable checkpointing); (c) the engine on a
  fresh SQLite file, timed from ``engine.run`` being called until it returns the settled run (final flush included);
- a fan-out of 1,000 branches of 20 ms sleeps at ``max_concurrency`` 64 through the engine, against its ideal;
- breakers: the engine chain again with the no-op's circuit breaker off (``breaker = false``): what counting every
  call for its breaker costs. Target: <= 1.05 x.
- delegation: a chain of 100 workflow steps (each a child run of a one-no-op-step workflow) against a chain of
  100 tool steps, per step; and a fan-out of 1,000 such children, every one of them recorded;
- last, a 10,000-branch no-op fan-out through the engine: wall time, step records found, and peak RSS.

Opening the store, migrating it and registering the tools are outside the timings. This is a report, not a test:
the exit code is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.noop_tools import noop  # noqa: E402
from patterns.engine import Engine  # noqa: E402
from patterns.limits import Limits  # noqa: E402
from registry import PythonProvider, Registry, ToolSpec, WorkflowSpec  # noqa: E402
from storage import Store  # noqa: E402

LIMITS = Limits(max_fan_out=20_000, max_steps=100_000, max_concurrency=64)
FAN_OUT_CONCURRENCY = 64
SLEEP_BRANCHES = 1_000
SLEEP_S = 0.02
BIG_FAN_OUT = 10_000
WARMUP_N = 50

CHAIN_TARGET = 2.0  # engine chain / sqlite floor
SLEEP_TARGET = 1.15  # 1000 x 20 ms fan-out / ideal
RSS_TARGET_MB = 300.0
DELEGATIONS = 100  # workflow steps per chain (each is a whole child run: milliseconds, not microseconds)
CHILD_FAN_OUT = 1_000
WORKFLOW_TARGET = 5.0  # workflow step / tool step
BREAKER_TARGET = 1.05  # chain step with its breaker kept / with breaker = false
ONE_STEP = WorkflowSpec(name="one-noop", version="1.0.0", step={"tool": "noop"})

TOOLS = [
    ToolSpec(
        name="noop",
        version="1.0.0",
        provider=PythonProvider(target="bench.noop_tools:noop"),
        idempotent=True,
    ),
    ToolSpec(
        name="noop-unguarded",
        version="1.0.0",
        provider=PythonProvider(target="bench.noop_tools:noop"),
        idempotent=True,
        breaker=False,
    ),
    ToolSpec(
        name="sleep20",
        version="1.0.0",
        provider=PythonProvider(target="bench.noop_tools:sleep20"),
        idempotent=True,
    ),
]

_FLOOR_SCHEMA = (
    "CREATE TABLE steps (run_id TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL, output TEXT, "
    "finished_at REAL NOT NULL, PRIMARY KEY (run_id, path))"
)
_FLOOR_INSERT = "INSERT INTO steps (run_id, path, status, output, finished_at) VALUES (?, ?, ?, ?, ?)"


# -- steps ---------------------------------------------------------------------------------------------------


def chain_step(n: int, tool: str = "noop") -> dict[str, Any]:
    return {"chain": [{"tool": tool}] * n}


def fan_out_step(n: int, tool: str = "noop") -> dict[str, Any]:
    return {"fan_out": {"branches": [{"tool": tool}] * n, "max_concurrency": FAN_OUT_CONCURRENCY}}


# -- databases -----------------------------------------------------------------------------------------------


class Files:
    """Fresh database files in one temporary directory, removed (with their WAL and SHM files) after use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def fresh(self, label: str) -> Path:
        self._count += 1
        return self.root / f"{self._count:04d}-{label}.db"

    @staticmethod
    def remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def open_floor_db(path: Path) -> sqlite3.Connection:
    """The floor's connection: stdlib sqlite3, WAL, synchronous=NORMAL, a table shaped like a step record."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(_FLOOR_SCHEMA)
    connection.commit()
    return connection


def checkpoint(connection: sqlite3.Connection, path: str, output: Any) -> None:
    """One durable step record: one INSERT and one COMMIT."""
    connection.execute(_FLOOR_INSERT, ("run", path, "completed", json.dumps(output), time.time()))
    connection.commit()


# -- (a) raw anyio -------------------------------------------------------------------------------------------


async def raw_chain(n: int, files: Files) -> float:
    value: dict[str, Any] = {}
    start = time.perf_counter()
    for _ in range(n):
        value = await noop(**value)
    return time.perf_counter() - start


async def raw_fan_out(n: int, files: Files) -> float:
    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(noop)
    return time.perf_counter() - start


async def raw_sleep_fan_out(n: int, files: Files) -> float:
    """Reference for the sleep case: ``n`` 20 ms sleeps on a pool of 64 workers, nothing else."""
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            await anyio.sleep(SLEEP_S)

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(min(n, FAN_OUT_CONCURRENCY)):
            group.start_soon(worker)
    return time.perf_counter() - start


# -- (b) stdlib sqlite3 floor --------------------------------------------------------------------------------


async def sqlite_chain(n: int, files: Files) -> float:
    path = files.fresh("floor-chain")
    connection = open_floor_db(path)
    try:
        value: dict[str, Any] = {}
        start = time.perf_counter()
        for index in range(n):
            value = await noop(**value)
            checkpoint(connection, str(index), value)
        return time.perf_counter() - start
    finally:
        connection.close()
        files.remove(path)


async def sqlite_fan_out(n: int, files: Files) -> float:
    path = files.fresh("floor-fan-out")
    connection = open_floor_db(path)

    async def branch(index: int) -> None:
        checkpoint(connection, f"fan_out/{index}", await noop())

    try:
        start = time.perf_counter()
        async with anyio.create_task_group() as group:
            for index in range(n):
                group.start_soon(branch, index)
        return time.perf_counter() - start
    finally:
        connection.close()
        files.remove(path)


# -- (c) the engine ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineRun:
    seconds: float
    status: str
    steps_used: int
    records: int | None
    children: int | None = None
    """Child runs that succeeded (counted with the records)."""


async def engine_once(files: Files, label: str, step: dict[str, Any], *, count_records: bool = False) -> EngineRun:
    """One run on a fresh store and engine; only ``engine.run`` (start to settled) is timed."""
    path = files.fresh(label)
    try:
        async with Store.open(f"sqlite:///{path}") as store:
            registry = Registry(store)
            for spec in TOOLS:
                await registry.register(spec)
            await registry.register_workflow(ONE_STEP)
            async with Engine(store, registry, LIMITS) as engine:
                gc.collect()
                start = time.perf_counter()
                # the run's input must be an object: a python tool is called as tool(**input)
                run = await engine.run(step, {})
                seconds = time.perf_counter() - start
                if run.status != "succeeded":
                    raise RuntimeError(f"benchmark run {label} ended {run.status}: {run.error}")
                records = len(await engine.steps(run.id)) if count_records else None
                children = None
                if count_records:
                    children = sum(c.status == "succeeded" for c in await store.child_runs(run.id))
        return EngineRun(seconds, run.status, run.usage_steps, records, children)
    finally:
        files.remove(path)


async def engine_chain(n: int, files: Files) -> float:
    return (await engine_once(files, "engine-chain", chain_step(n))).seconds


async def engine_chain_unguarded(n: int, files: Files) -> float:
    return (await engine_once(files, "engine-chain-unguarded", chain_step(n, "noop-unguarded"))).seconds


async def engine_fan_out(n: int, files: Files) -> float:
    return (await engine_once(files, "engine-fan-out", fan_out_step(n))).seconds


async def engine_workflow_chain(n: int, files: Files) -> float:
    step = {"chain": [{"workflow": ONE_STEP.name}] * n}
    return (await engine_once(files, "engine-workflows", step)).seconds


async def engine_sleep_fan_out(n: int, files: Files) -> float:
    return (await engine_once(files, "engine-sleep", fan_out_step(n, "sleep20"))).seconds


# -- measuring and reporting ---------------------------------------------------------------------------------

Measure = Callable[[int, Files], Awaitable[float]]


@dataclass
class Row:
    case: str
    variant: str
    n: int
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def per_item_us(self) -> float:
        return self.median / self.n * 1e6


async def interleaved(files: Files, n: int, reps: int, case: str, variants: Sequence[tuple[str, Measure]]) -> list[Row]:
    """Each variant once untimed (warm-up), then ``reps`` rounds of every variant in turn."""
    for _, measure in variants:
        await measure(min(n, WARMUP_N), files)
    rows = [Row(case, name, n, []) for name, _ in variants]
    for _ in range(reps):
        for row, (_, measure) in zip(rows, variants, strict=True):
            gc.collect()
            row.samples.append(await measure(n, files))
    return rows


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(rows: Sequence[Row], floors: dict[str, float]) -> None:
    header = f"{'case':<34} {'variant':<40} {'median ms':>10} {'µs/item':>9} {'× floor':>8}  samples (ms)"
    print(header)
    print("-" * len(header))
    for row in rows:
        floor = floors.get(row.case)
        ratio = f"{row.median / floor:8.2f}" if floor else f"{'':>8}"
        samples = " ".join(f"{s * 1000:.2f}" for s in row.samples)
        print(f"{row.case:<34} {row.variant:<40} {row.median * 1000:10.2f} {row.per_item_us:9.2f} {ratio}  {samples}")


async def main(n: int, reps: int, big: bool) -> None:
    print(f"Podium engine benchmark: N={n}, reps={reps} (medians of interleaved repetitions)")
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, anyio {version('anyio')} on asyncio, "
        f"SQLAlchemy {version('sqlalchemy')}\n"
        f"engine limits: max_fan_out={LIMITS.max_fan_out}, max_steps={LIMITS.max_steps}, "
        f"max_concurrency={LIMITS.max_concurrency}; engine fan-outs use max_concurrency={FAN_OUT_CONCURRENCY}"
    )
    print(f"warm-up: one untimed run of each variant at n={WARMUP_N} before each case\n")
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        files = Files(Path(tmp))
        chain_case = f"chain of {n} no-op steps"
        fan_case = f"fan-out of {n} no-op branches"
        sleep_case = f"fan-out of {SLEEP_BRANCHES} x 20 ms sleeps"
        chain = await interleaved(
            files,
            n,
            reps,
            chain_case,
            [
                ("(a) raw anyio, no persistence", raw_chain),
                ("(b) sqlite3 INSERT+COMMIT per step", sqlite_chain),
                ("(c) engine, fresh SQLite file", engine_chain),
                ("(c') engine, the tool's breaker off", engine_chain_unguarded),
            ],
        )
        fan = await interleaved(
            files,
            n,
            reps,
            fan_case,
            [
                ("(a) raw anyio task group", raw_fan_out),
                ("(b) sqlite3 INSERT+COMMIT per branch", sqlite_fan_out),
                ("(c) engine, max_concurrency 64", engine_fan_out),
            ],
        )
        sleep = await interleaved(
            files,
            SLEEP_BRANCHES,
            reps,
            sleep_case,
            [
                ("(a) raw anyio, 64 workers (reference)", raw_sleep_fan_out),
                ("(c) engine, max_concurrency 64", engine_sleep_fan_out),
            ],
        )
        delegation_case = f"chain of {DELEGATIONS} steps"
        delegation = await interleaved(
            files,
            DELEGATIONS,
            reps,
            delegation_case,
            [
                ("(c) engine, tool steps", engine_chain),
                ("(d) engine, workflow steps (child runs)", engine_workflow_chain),
            ],
        )
        rows = [*chain, *fan, *sleep, *delegation]
        floors = {chain_case: chain[1].median, fan_case: fan[1].median}
        print_table(rows, floors)

        ideal = math.ceil(SLEEP_BRANCHES / FAN_OUT_CONCURRENCY) * SLEEP_S
        chain_ratio = chain[2].median / chain[1].median
        fan_ratio = fan[2].median / fan[1].median
        sleep_ratio = sleep[1].median / ideal
        print()
        print(
            f"engine chain / sqlite floor:   {chain_ratio:6.2f}  "
            f"({chain[2].per_item_us:.1f} vs {chain[1].per_item_us:.1f} µs/step)   "
            f"target <= {CHAIN_TARGET}: {verdict(chain_ratio <= CHAIN_TARGET)}"
        )
        print(
            f"engine fan-out / sqlite floor: {fan_ratio:6.2f}  "
            f"({fan[2].per_item_us:.1f} vs {fan[1].per_item_us:.1f} µs/branch)   (no target)"
        )
        print(
            f"{SLEEP_BRANCHES} x 20 ms fan-out / ideal:  {sleep_ratio:6.3f}  "
            f"({sleep[1].median * 1000:.1f} ms vs ideal ceil({SLEEP_BRANCHES}/{FAN_OUT_CONCURRENCY}) x 20 ms = "
            f"{ideal * 1000:.0f} ms)   target <= {SLEEP_TARGET}: {verdict(sleep_ratio <= SLEEP_TARGET)}"
        )
        print(f"  (raw anyio, same pool, no engine: {sleep[0].median / ideal:.3f} x ideal)")
        breaker_ratio = chain[2].median / chain[3].median
        print(
            f"breaker bookkeeping:           {breaker_ratio:6.3f}  "
            f"({chain[2].per_item_us:.1f} vs {chain[3].per_item_us:.1f} µs/step with the tool's breaker off)   "
            f"target <= {BREAKER_TARGET}: {verdict(breaker_ratio <= BREAKER_TARGET)}"
        )
        workflow_ratio = delegation[1].median / delegation[0].median
        print(
            f"workflow step / tool step:     {workflow_ratio:6.2f}  "
            f"({delegation[1].per_item_us:.0f} vs {delegation[0].per_item_us:.0f} µs/step)   "
            f"target <= {WORKFLOW_TARGET}: {verdict(workflow_ratio <= WORKFLOW_TARGET)}"
        )
        delegates = {"fan_out": {"branches": [{"workflow": ONE_STEP.name}] * CHILD_FAN_OUT}}
        children = await engine_once(files, "engine-children", delegates, count_records=True)
        print(
            f"fan-out of {CHILD_FAN_OUT} child workflows: {children.seconds:.2f} s, children succeeded "
            f"{children.children} of {CHILD_FAN_OUT}: {verdict(children.children == CHILD_FAN_OUT)}"
        )

        if not big:
            print(f"\n{BIG_FAN_OUT}-branch fan-out: skipped (--quick)")
            return
        print(f"\npeak RSS before the {BIG_FAN_OUT}-branch fan-out: {rss_mb():.1f} MB")
        gc.collect()
        result = await engine_once(files, "engine-10k", fan_out_step(BIG_FAN_OUT), count_records=True)
        peak = rss_mb()
        expected = BIG_FAN_OUT + 1
        print(
            f"{BIG_FAN_OUT}-branch no-op fan-out (one run): {result.seconds:.2f} s "
            f"({result.seconds / BIG_FAN_OUT * 1e6:.1f} µs/branch), tool steps used {result.steps_used}"
        )
        print(
            f"  step records found: {result.records} of {expected} "
            f"({BIG_FAN_OUT} branches + 1 fan-out record): {verdict(result.records == expected)}"
        )
        print(f"  peak RSS: {peak:.1f} MB   target < {RSS_TARGET_MB:.0f} MB: {verdict(peak < RSS_TARGET_MB)}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="steps per chain and branches per fan-out")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions of each measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: N=200, reps=2, no 10,000-branch fan-out")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    n, reps = (200, 2) if args.quick else (args.n, args.reps)
    anyio.run(partial(main, n, reps, not args.quick))
