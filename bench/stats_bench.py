"""What ``podium stats`` costs on a large store: ``store.stats.read`` over 1,000,000 step records on SQLite.

Run from the repository root::

    python bench/stats_bench.py [--steps 1000000] [--reps 3]

A fresh SQLite file with the store's schema (its migrations, so ``ix_steps_stats`` included) is filled with
``--steps`` finished tool steps of 20 tool versions (10 steps per run, lognormal durations, 5% failed, all started
in the last 24 hours), then timed, interleaved:

- (a) the baseline: stdlib sqlite3, one pass over the step table (``SELECT count(*), sum(cost) FROM steps``);
- (b) ``store.stats.read(since=24 h ago)``: per tool version calls, failures, cost and p50/p95/p99; runs by
  pattern and status. Target: <= 1 s (and printed as a ratio to (a)).

Filling the file takes about half a minute per million steps.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import Store

TARGET_S = 1.0
TOOLS = [(f"tool-{n}", f"1.{minor}.0") for n in range(10) for minor in range(2)]


async def fill(path: Path, steps: int) -> float:
    """The schema by the store, the rows by sqlite3 (as fast as they can go in). Returns the time they start at."""
    async with Store.open(f"sqlite:///{path}"):
        pass
    now = time.time()
    rng = random.Random(7)
    connection = sqlite3.connect(path)
    runs: list[tuple[str, str, float]] = []
    rows: list[tuple[object, ...]] = []
    for n in range(steps):
        run = f"run-{n // 10:08d}"
        if n % 10 == 0:
            created = now - rng.random() * 86_000
            status = "succeeded" if rng.random() < 0.9 else "failed"
            runs.append((run, status, created))
            root = (run, "", "chain", None, None, "completed", None, None, None, "[]", "[]", 0.0, created, created)
            rows.append(root)
        tool, version = TOOLS[n % len(TOOLS)]
        started = now - rng.random() * 86_000
        status = "failed" if rng.random() < 0.05 else "completed"
        finished = started + rng.lognormvariate(-3, 1)
        step = (run, str(n % 10), "tool", tool, version, status, None, "{}", None, "[]", "[]", 0.001, started, finished)
        rows.append(step)
    # a run's other required columns: an empty value of their type
    required = [
        (name, "0" if kind in ("INTEGER", "FLOAT") else "'{}'")
        for _, name, kind, notnull, _, _ in connection.execute("PRAGMA table_info(runs)")
        if notnull and name not in ("id", "status", "created_at", "updated_at")
    ]
    required.append(("pattern", "'chain'"))
    names = ", ".join(name for name, _ in required)
    values = ", ".join(value for _, value in required)
    connection.executemany(
        f"INSERT INTO runs (id, status, created_at, updated_at, {names}) VALUES (?, ?, ?, ?, {values})",
        [(run, status, created, created) for run, status, created in runs],
    )
    connection.executemany("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return now - 86_400


def baseline(path: Path) -> float:
    connection = sqlite3.connect(path)
    started = time.perf_counter()
    connection.execute("SELECT count(*), sum(cost) FROM steps").fetchall()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


async def reading(path: Path, since: float) -> tuple[float, int]:
    async with Store.open(f"sqlite:///{path}") as store:
        started = time.perf_counter()
        stats = await store.stats.read(since)
        elapsed = time.perf_counter() - started
    return elapsed, sum(tool.calls for tool in stats.tools)


async def main(steps: int, reps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="podium-stats-") as tmp:
        path = Path(tmp) / "stats.db"
        filling = time.perf_counter()
        since = await fill(path, steps)
        print(f"filled {steps:,} step records in {time.perf_counter() - filling:.1f} s")
        samples: dict[str, list[float]] = {"baseline": [], "stats": []}
        counted = 0
        for rep in range(reps + 1):  # the first round warms the page cache and is not counted
            scan = baseline(path)
            read, counted = await reading(path, since)
            if rep:
                samples["baseline"].append(scan)
                samples["stats"].append(read)
    assert counted == steps, f"stats counted {counted} calls of {steps}"
    scan, read = (statistics.median(samples[name]) for name in ("baseline", "stats"))
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; median of {reps}\n")
    print(f"(a) one pass over the step table (count, sum):  {scan * 1000:8.1f} ms")
    print(f"(b) store.stats.read (24 h, every tool):        {read * 1000:8.1f} ms   {read / scan:.2f}x (a)")
    print(
        f"\nstats over {steps:,} step records: {read:.2f} s   target <= {TARGET_S:g} s: "
        f"{'PASS' if read <= TARGET_S else 'FAIL'}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, args.steps, args.reps)
