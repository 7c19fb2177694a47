"""What deciding an event costs: ``emit`` against one sqlite INSERT+COMMIT, measured in the same run.

Run from the repository root::

    python bench/events_bench.py [--events 2000] [--reps 3]

A fresh SQLite file each time, one trigger (``cooldown_s`` 4 h) on a one-no-op-step workflow, interleaved:

- (b) the floor: stdlib sqlite3 (WAL, synchronous NORMAL like the store), one INSERT and COMMIT per event;
- (c) hot key: ``--events`` events for one key, each with its own id: the first fires, every other is suppressed by
  the cooldown. Each event is decided in one transaction (the duplicate check, the cooldown upsert and the event's
  record). Target: <= 2 x the floor per event; runs started: exactly 1;
- (d) distinct keys: ``--events`` events for as many keys: every one fires and starts its run (reported: a fired
  event also pays for starting a run, which the target does not cover).
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patterns import Engine, Limits
from registry import PythonProvider, Registry, ToolSpec, WorkflowSpec
from registry.triggers import TriggerSpec
from storage import Store

TARGET = 2.0


def floor(path: Path, events: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE events (id TEXT PRIMARY KEY, type TEXT, key TEXT, payload TEXT, at REAL)")
    gc.collect()
    started = time.perf_counter()
    for n in range(events):
        connection.execute("BEGIN")
        connection.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)", (f"e{n}", "contract.renewal_due", "C-1", "{}", time.time())
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


async def emitting(path: Path, events: int, distinct: bool) -> tuple[float, int]:
    async with Store.open(f"sqlite:///{path}") as store:
        registry = Registry(store)
        await registry.register(
            ToolSpec(name="noop", version="1.0.0", provider=PythonProvider(target="bench.noop_tools:noop"))
        )
        await registry.register_workflow(WorkflowSpec(name="renewal", version="1.0.0", step={"tool": "noop"}))
        await registry.register_trigger(
            TriggerSpec(name="renewals", on="contract.renewal_due", workflow="renewal", cooldown_s=14_400)
        )
        async with Engine(store, registry, Limits()) as engine:
            gc.collect()
            started = time.perf_counter()
            for n in range(events):
                await engine.emit("contract.renewal_due", {"n": n}, key=f"C-{n}" if distinct else "C-1")
            elapsed = time.perf_counter() - started
            runs = len(await store.list_runs(None, events + 1))
    return elapsed, runs


async def main(events: int, reps: int) -> None:
    samples: dict[str, list[float]] = {"floor": [], "hot": [], "distinct": []}
    runs: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="podium-events-") as tmp:
        root = Path(tmp)
        for rep in range(reps + 1):  # the first round warms up and is not counted
            timed = rep > 0
            one = floor(root / f"floor-{rep}.db", events)
            hot, runs["hot"] = await emitting(root / f"hot-{rep}.db", events, distinct=False)
            distinct, runs["distinct"] = await emitting(root / f"distinct-{rep}.db", events, distinct=True)
            if timed:
                samples["floor"].append(one)
                samples["hot"].append(hot)
                samples["distinct"].append(distinct)
    per = {name: statistics.median(values) / events * 1e6 for name, values in samples.items()}
    ratio = per["hot"] / per["floor"]
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; {events} events, median of {reps}\n")
    print(f"(b) sqlite3 INSERT+COMMIT per event:        {per['floor']:8.1f} µs/event")
    print(f"(c) emit, one hot key (all but 1 suppressed): {per['hot']:8.1f} µs/event   runs started: {runs['hot']}")
    shown = f"{per['distinct']:8.1f} µs/event   runs started: {runs['distinct']}"
    print(f"(d) emit, distinct keys (each fires a run):  {shown}")
    print(
        f"\nhot key / floor: {ratio:.2f}   target <= {TARGET}: {'PASS' if ratio <= TARGET else 'FAIL'}; "
        f"suppressions start no run: {'PASS' if runs['hot'] == 1 else 'FAIL'}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, args.events, args.reps)
