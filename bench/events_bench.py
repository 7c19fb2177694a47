"""What deciding an event costs: ``emit`` against one sqlite INSERT+COMMIT, measured in the same run.

Run from the repository root::

    python bench/events_bench.py [--events 10000] [--fired 1000] [--emitters 64] [--reps 3]

A fresh SQLite file each time, one trigger (``cooldown_s`` 4 h) on a one-no-op-step workflow, interleaved:

- (b) the floor: stdlib sqlite3 (WAL, synchronous NORMAL like the store), one INSERT and COMMIT per event;
- (c) hot key: ``--events`` events for one key, one after another, each with its own id: the first fires, every
  other is suppressed by the cooldown the store remembers, and its record is written behind (the time ends when
  all records are durable); then again with ids the sender gives (``evt-N``), each looked up for a duplicate
  first. Target: <= 2 x the floor per event, both ways; runs started: exactly 1;
- (d) distinct keys, decisions: ``--events`` events for as many keys from ``--emitters`` concurrent senders (as
  webhooks arrive), through ``store.events.decide``: each fires, so each is decided in the database (the cooldown
  upsert and the event's record), the events waiting meanwhile sharing the next transaction. Target: <= 2 x the
  floor per event;
- (e) distinct keys, ``emit``: ``--fired`` events from as many concurrent senders, each deciding and starting its
  run (reported: starting and running a workflow is not part of the decision, and costs more).

Once its store and engine are open, each part calls ``tune_interpreter`` as ``podium serve`` does (a collection,
then ``gc.freeze``: the long-lived objects are out of the collector's way; and a 1 ms switch interval). Reported for
context: the collector's passes during the timed parts and what they took, and (c) with the sender's ids once more
without ``tune_interpreter`` (the heap unfrozen, the default 5 ms interval).
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patterns import Engine, Limits
from registry import PythonProvider, Registry, ToolSpec, WorkflowSpec
from registry.triggers import TriggerSpec
from server.serving import tune_interpreter
from storage import Store
from storage.events import Claim

TARGET = 2.0
DEFAULT_SWITCH_INTERVAL_S = sys.getswitchinterval()


class Collector:
    """The garbage collector's passes while ``timing()`` blocks run: per generation, how many and how long."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._on = False
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if not self._on:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.passes[info["generation"]] += 1
            self.seconds[info["generation"]] += time.perf_counter() - self._started

    @contextmanager
    def timing(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False

    def report(self) -> str:
        return ", ".join(
            f"gen{g}: {n} in {t * 1e3:.0f} ms" for g, (n, t) in enumerate(zip(self.passes, self.seconds, strict=True))
        )


COLLECTORS = {name: Collector() for name in ("hot", "hot_ids", "unsettled", "decisions", "distinct")}


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


async def emitting(
    path: Path, events: int, distinct: bool, *, name: str, emitters: int = 1, ids: bool = False, settle: bool = True
) -> tuple[float, int]:
    """Emit ``events`` events and wait until all are durable; the collector's passes meanwhile go to ``name``."""
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
            if settle:
                tune_interpreter()
            else:  # the process as it would be had tune_interpreter never run
                gc.unfreeze()
                gc.collect()
                sys.setswitchinterval(DEFAULT_SWITCH_INTERVAL_S)

            async def emitter(first: int) -> None:
                for n in range(first, events, emitters):
                    await engine.emit(
                        "contract.renewal_due",
                        {"n": n},
                        key=f"C-{n}" if distinct else "C-1",
                        event_id=f"evt-{n}" if ids else None,  # the sender's ids: each is checked for a duplicate
                    )

            with COLLECTORS[name].timing():
                started = time.perf_counter()
                async with anyio.create_task_group() as group:
                    for first in range(emitters):
                        group.start_soon(emitter, first)
                await store.flush()  # the events written behind are durable: their cost is counted
                elapsed = time.perf_counter() - started
            runs = len(await store.list_runs(None, events + 1))
            recorded = len(await store.events.list(limit=events + 1))
    assert recorded == events, f"{recorded} of {events} events recorded"
    return elapsed, runs


async def deciding(path: Path, events: int, emitters: int) -> float:
    """Decide ``events`` events of distinct keys (each fires) from ``emitters`` concurrent senders."""
    outcome: dict[str, object] = {"duplicate": False, "fired": [], "suppressed": [], "skipped": []}
    ids = [str(uuid.uuid4()) for _ in range(events)]  # made before the clock starts: the decision is measured
    async with Store.open(f"sqlite:///{path}") as store:

        async def emitter(first: int) -> None:
            for n in range(first, events, emitters):
                claims = [Claim("renewals", f"C-{n}", 14_400)]
                _, _, decided = await store.events.decide(
                    ids[n], "contract.renewal_due", f"C-{n}", "{}", "bench", claims, outcome, new_id=True, payload={}
                )
                assert decided == {"renewals": ("fire", None)}, decided

        tune_interpreter()
        with COLLECTORS["decisions"].timing():
            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for first in range(emitters):
                    group.start_soon(emitter, first)
            elapsed = time.perf_counter() - started
        recorded = len(await store.events.list(limit=events + 1))
    assert recorded == events, f"{recorded} of {events} events recorded"
    return elapsed


async def main(events: int, fired: int, emitters: int, reps: int) -> None:
    samples: dict[str, list[float]] = {
        name: [] for name in ("floor", "hot", "hot_ids", "unsettled", "decisions", "distinct")
    }
    runs: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="podium-events-") as tmp:
        root = Path(tmp)
        for rep in range(reps + 1):  # the first round warms up and is not counted
            timed = rep > 0
            if rep == 1:
                for collector in COLLECTORS.values():
                    collector.reset()  # the warm-up round is not counted
            one = floor(root / f"floor-{rep}.db", events)
            hot, runs["hot"] = await emitting(root / f"hot-{rep}.db", events, False, name="hot")
            hot_ids, runs["hot_ids"] = await emitting(root / f"ids-{rep}.db", events, False, ids=True, name="hot_ids")
            unsettled, _ = await emitting(
                root / f"unsettled-{rep}.db", events, False, ids=True, settle=False, name="unsettled"
            )
            decisions = await deciding(root / f"decisions-{rep}.db", events, emitters)
            distinct, runs["distinct"] = await emitting(
                root / f"distinct-{rep}.db", fired, True, emitters=emitters, name="distinct"
            )
            if timed:
                samples["floor"].append(one)
                samples["hot"].append(hot)
                samples["hot_ids"].append(hot_ids)
                samples["unsettled"].append(unsettled)
                samples["decisions"].append(decisions)
                samples["distinct"].append(distinct)
    per = {name: statistics.median(values) / events * 1e6 for name, values in samples.items()}
    per["distinct"] = statistics.median(samples["distinct"]) / fired * 1e6
    hot, decided = max(per["hot"], per["hot_ids"]) / per["floor"], per["decisions"] / per["floor"]
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; {events} events, median of {reps}\n")
    print(f"(b) sqlite3 INSERT+COMMIT per event:             {per['floor']:8.1f} µs/event")
    print(f"(c) emit, one hot key (all but 1 suppressed):    {per['hot']:8.1f} µs/event   runs started: {runs['hot']}")
    shown = f"{per['hot_ids']:8.1f} µs/event   runs started: {runs['hot_ids']}"
    print(f"    the same with the sender's event ids:        {shown}")
    print(f"    the same without tune_interpreter (context): {per['unsettled']:8.1f} µs/event")
    print(f"(d) decide, distinct keys ({emitters} senders, each fires): {per['decisions']:8.1f} µs/event")
    shown = f"{per['distinct']:8.1f} µs/event   runs started: {runs['distinct']} of {fired}"
    print(f"(e) emit, distinct keys ({emitters} senders, each starts a run): {shown}")
    print(
        f"\nhot key / floor (the slower of the two): {hot:.2f}   target <= {TARGET}: "
        f"{'PASS' if hot <= TARGET else 'FAIL'}; "
        f"suppressions start no run: {'PASS' if runs['hot'] == runs['hot_ids'] == 1 else 'FAIL'}"
    )
    verdict = "PASS" if decided <= TARGET else "FAIL"
    print(f"distinct-key decision / floor: {decided:.2f}   target <= {TARGET}: {verdict}")
    print(f"\ngarbage collector during the {reps} counted timings of each (context):")
    for name, label in (
        ("hot", "(c) Podium's ids"),
        ("hot_ids", "(c) the sender's ids"),
        ("unsettled", "(c) the sender's ids, no tune_interpreter"),
        ("decisions", "(d)"),
        ("distinct", "(e)"),
    ):
        print(f"  {label + ':':38} {COLLECTORS[name].report()}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--fired", type=int, default=1000, help="events for (e), each starting a run")
    parser.add_argument("--emitters", type=int, default=64, help="concurrent senders for (d) and (e)")
    parser.add_argument("--reps", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, args.events, args.fired, args.emitters, args.reps)
