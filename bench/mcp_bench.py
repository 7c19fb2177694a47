"""What the MCP server adds to a run, measured against the in-process engine and a bare SDK server.

Run from the repository root::

    python bench/mcp_bench.py [--reps 30] [--spawns 5] [--mode auto|legacy] [--quick]

The machine is noisy, so every target is a ratio (or, for cold start, a difference) of two things measured in the
same run, and every figure is the median of interleaved repetitions (rounds of every case, each round in a shuffled
order: b, a, c, c, a, b, ...), ``gc.collect()`` before each sample, after untimed warm-up rounds. Times are
client-side wall time around one call.

One ``podium serve`` subprocess over stdio (a fresh SQLite file, and a registry file holding ``noop@1.0.0``, an
async no-op, and ``syncwork@1.0.0``, a plain ``def`` taking and returning ``{"value": int}`` with input and output
schemas) and one ``mcp.Client`` connected to it serve parts 1, 2, 3 and 5; the in-process engine of part 1 runs
in this process on its own fresh SQLite file, with the server's default limits. Run-starting calls pass
``"options": {"step_limit": 0}`` so that results stay small however long the chain.

1. ``run_chain`` per-step slope over stdio: chains of 10 and 200 ``{"tool": "noop"}`` steps, slope =
   (median(200) - median(10)) / 190, against the same slope of ``engine.run`` in this process.
   Target: MCP slope <= 1.3 x in-process slope.
2. No call answers more than 10 ms after its run settled: for every timed ``run_chain`` call, lag = (time.time()
   when the answer arrived) - (the run's ``finished_at``). Both are this machine's wall clock. The RunResult's
   ``finished_at`` is used if it has one, else the ``runs.finished_at`` the server wrote to its SQLite file (read
   by run id after the timings). Target: max lag <= 10 ms (p90 reported too). For context, no target: how long
   after its run's ``finished_at`` the in-process ``engine.run`` returned.
3. Slope of ``syncwork`` chains (10 and 200 steps, each step's output the next one's input, from ``{"value": 0}``)
   over stdio against the noop slope of part 1. Target: <= 2 x. For context, no target: the same two slopes in
   process, which tell the engine's share of the difference from the server's; what one bare hand-off of a
   function to a worker thread and back costs on this process's loop (200 in a row, interleaved with the chains),
   which a sync step pays and an async one does not, before any work of its own, and the same on uvloop (the loop
   ``podium serve`` runs on where uvloop is installed), with the kernel's count of the process's context switches
   per hand-off on uvloop (2,000 after 2,000 untimed; two is the floor); and under both, a lock handed from one
   thread to another on the same CPU and back, with no event loop: the two wake-ups alone.
4. Cold start: from spawning the process to the first answered ``tools/list``, ``podium serve`` (on the database
   it used before, as every start but the first does; the same registry) against ``bench/bare_server.py`` (an
   ``MCPServer`` with one async tool), each spawned ``--spawns`` times, interleaved. Target: podium median <= bare
   median + 0.3 s. For context, no target: ``podium serve`` on a fresh database file, which it creates; and when
   the first call that needs the store (``list_runs`` right after ``tools/list``) was answered: ``podium serve``
   answers ``initialize`` and ``tools/list`` while it opens its store in the background.
5. One round trip: ``run_chain`` of one noop step on Podium against ``ping`` on the bare server, each over its
   own long-lived client, interleaved. Target: podium median <= 3 x bare median.

This is a report, not a test: the exit code is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from patterns.engine import Engine  # noqa: E402
from patterns.limits import Limits  # noqa: E402
from registry import PythonProvider, Registry, ToolSpec  # noqa: E402
from storage import Store  # noqa: E402
from storage.threads import WorkerThreads  # noqa: E402

PODIUM = str(Path(sys.executable).with_name("podium"))
BARE_SERVER = REPO_ROOT / "bench" / "bare_server.py"

SHORT, LONG = 10, 200  # chain lengths whose difference gives the per-step slope
DEFAULT_REPS = 30
ORDER_SEED = 11  # the rounds' shuffled orders (see ``interleaved``)
DEFAULT_SPAWNS = 5
QUICK_REPS = 5
QUICK_SPAWNS = 2
CHAIN_WARMUP_ROUNDS = 2
SWITCH_COUNT_HANDOFFS = 2000  # context (part 3): the kernel's count of context switches over this many hand-offs
ROUND_TRIP_WARMUP_ROUNDS = 10
READ_TIMEOUT_S = 60.0  # per request; a hung server fails the run instead of stalling it

MCP_SLOPE_TARGET = 1.3  # MCP slope / in-process slope
LAG_TARGET_MS = 10.0  # answer arrived - run finished
SYNC_SLOPE_TARGET = 2.0  # syncwork slope / noop slope, both over MCP
COLD_START_MARGIN_S = 0.3  # podium median - bare median
ROUND_TRIP_TARGET = 3.0  # one-step run_chain / bare ping

VALUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"value": {"type": "integer"}},
    "required": ["value"],
    "additionalProperties": False,
}

REGISTRY: dict[str, Any] = {
    "tool": [
        {
            "name": "noop",
            "version": "1.0.0",
            "provider": {"type": "python", "target": "bench.noop_tools:noop"},
            "idempotent": True,
        },
        {
            "name": "syncwork",
            "version": "1.0.0",
            "provider": {"type": "python", "target": "bench.noop_tools:syncwork"},
            "idempotent": True,
            "input_schema": VALUE_SCHEMA,
            "output_schema": VALUE_SCHEMA,
        },
    ]
}

# The in-process engine's tools: those of REGISTRY.
ENGINE_TOOLS = [
    ToolSpec(
        name=tool["name"],
        version=tool["version"],
        provider=PythonProvider(target=tool["provider"]["target"]),
        idempotent=tool["idempotent"],
        input_schema=tool.get("input_schema"),
        output_schema=tool.get("output_schema"),
    )
    for tool in REGISTRY["tool"]
]


# -- the servers ---------------------------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    """The bench tools live in bench/, importable from the repository root."""
    return {"PYTHONPATH": str(REPO_ROOT), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


def write_registry(tmp: Path) -> Path:
    registry_file = tmp / "tools.json"
    registry_file.write_text(json.dumps(REGISTRY), encoding="utf-8")
    return registry_file


def podium_params(db: Path, registry_file: Path) -> StdioServerParameters:
    args = ["serve", "--db", str(db), "--registry", str(registry_file)]
    return StdioServerParameters(command=PODIUM, args=args, env=server_env(), cwd=REPO_ROOT)


def bare_params() -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(BARE_SERVER)], env=server_env(), cwd=REPO_ROOT)


def connect(params: StdioServerParameters, mode: str) -> Client:
    return Client(params, mode=mode, read_timeout_seconds=READ_TIMEOUT_S)


@asynccontextmanager
async def in_process_engine(db: Path) -> AsyncIterator[Engine]:
    """An engine in this process on a fresh SQLite file, with the server's default limits and durability."""
    async with Store.open(f"sqlite:///{db}") as store:
        registry = Registry(store)
        for spec in ENGINE_TOOLS:
            await registry.register(spec)
        async with Engine(store, registry, Limits()) as engine:
            yield engine


# -- timed calls ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """When (``time.time()``) the answer to a timed ``run_chain`` call arrived, and what it said."""

    label: str
    run_id: str
    answered_at: float
    result: dict[str, Any]


Measure = Callable[[list[Arrival] | None], Awaitable[float]]
"""One timed call; returns its seconds. A run_chain call records its arrival in the list, when given one."""


def chain_args(tool: str, n: int, value: dict[str, Any]) -> dict[str, Any]:
    return {"steps": [{"tool": tool}] * n, "input": value, "options": {"step_limit": 0}}


def podium_chain(client: Client, label: str, tool: str, n: int, value: dict[str, Any], expect: Any) -> Measure:
    """``run_chain`` of ``n`` steps of ``tool`` from ``value``, which must end succeeded with output ``expect``."""
    args = chain_args(tool, n, value)

    async def measure(arrivals: list[Arrival] | None) -> float:
        start = time.perf_counter()
        result = await client.call_tool("run_chain", args)
        seconds = time.perf_counter() - start
        answered_at = time.time()
        run = result.structured_content
        if result.is_error or run is None or run.get("status") != "succeeded":
            status = None if run is None else run.get("status")
            raise RuntimeError(f"{label}: run_chain ended {status}: {result.content}")
        steps = run.get("usage", {}).get("steps")
        if steps != n or run.get("output") != expect:
            raise RuntimeError(f"{label}: {steps} steps, output {run.get('output')!r}; expected {n}, {expect!r}")
        if arrivals is not None:
            arrivals.append(Arrival(label, run["run_id"], answered_at, run))
        return seconds

    return measure


def engine_chain(engine: Engine, tool: str, n: int, value: dict[str, Any], expect: Any, lags: list[float]) -> Measure:
    """``engine.run`` of a chain of ``n`` steps of ``tool``, from being called until it returns the settled run.
    When timed, how long after the run's ``finished_at`` it returned goes to ``lags`` (context for part 2)."""
    tree = {"chain": [{"tool": tool}] * n}

    async def measure(arrivals: list[Arrival] | None) -> float:
        start = time.perf_counter()
        run = await engine.run(tree, value)
        seconds = time.perf_counter() - start
        returned_at = time.time()
        if run.status != "succeeded" or run.usage_steps != n or run.output != expect:
            raise RuntimeError(f"in-process {n} {tool} ended {run.status}, {run.usage_steps} steps: {run.error}")
        if arrivals is not None and run.finished_at is not None:
            lags.append(returned_at - run.finished_at)
        return seconds

    return measure


def bare_ping(client: Client) -> Measure:
    async def measure(_: list[Arrival] | None) -> float:
        start = time.perf_counter()
        result = await client.call_tool("ping", {})
        seconds = time.perf_counter() - start
        if result.is_error or result.structured_content != {"result": "pong"}:
            raise RuntimeError(f"ping failed: {result.content}")
        return seconds

    return measure


# -- measuring -----------------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        return percentile90(self.samples)


def percentile90(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


async def interleaved(
    cases: Sequence[tuple[str, Measure]], reps: int, warmup: int, arrivals: list[Arrival]
) -> list[Row]:
    """``warmup`` untimed rounds of every case, then ``reps`` timed rounds of every case, each round in an order of
    its own (shuffled, the same for every run of the benchmark). A case is slower right after another process's
    busy case than after its own: in a fixed order, each case would always follow the same one, and that bias
    would stay in every ratio."""
    for _ in range(warmup):
        for _, measure in cases:
            await measure(None)
    rows = [Row(label) for label, _ in cases]
    order = random.Random(ORDER_SEED)
    for _ in range(reps):
        turn = list(zip(rows, cases, strict=True))
        order.shuffle(turn)
        for row, (_, measure) in turn:
            gc.collect()
            row.samples.append(await measure(arrivals))
    return rows


def slope(short: Row, long: Row) -> float:
    """Seconds per step: the difference of the medians over the difference in length."""
    return (long.median - short.median) / (LONG - SHORT)


@dataclass
class Chains:
    """Parts 1 and 3: median times of the chains, and when the in-process runs returned after settling."""

    mcp_noop: tuple[Row, Row]
    engine_noop: tuple[Row, Row]
    mcp_sync: tuple[Row, Row]
    engine_sync: tuple[Row, Row]  # context: what the engine alone pays for syncwork
    handoff: Row  # context: LONG bare hand-offs to a worker thread and back
    handoff_uvloop: Row | None  # the same on uvloop, where installed
    lock_trips: Row  # context: LONG round trips of a lock between two threads on one CPU, no event loop
    engine_lags: list[float]
    switches: float | None = None  # context: the process's context switches per bare hand-off on uvloop

    @property
    def rows(self) -> list[Row]:
        context = [self.handoff, *([] if self.handoff_uvloop is None else [self.handoff_uvloop]), self.lock_trips]
        return [*self.mcp_noop, *self.engine_noop, *self.mcp_sync, *self.engine_sync, *context]


def handoffs(n: int) -> Measure:
    """``n`` hand-offs, one after another, of a function that does nothing to a worker thread and back, as a sync
    tool's call is made (``storage.threads.WorkerThreads``, the registry's pool), on this process's event loop."""
    threads = WorkerThreads(1, name="bench-handoff")

    async def measure(_arrivals: list[Arrival] | None) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await threads.run(int)
        return time.perf_counter() - start

    return measure


async def in_a_thread_of_its_own(timed: Callable[[], float]) -> float:
    """``timed()`` in a new thread (it may set that thread's CPU affinity or run an event loop of its own), waited
    for without holding this loop; what it returned."""
    seconds: list[float] = []
    thread = threading.Thread(target=lambda: seconds.append(timed()), name="bench-own-thread")
    thread.start()
    await anyio.to_thread.run_sync(thread.join)
    return seconds[0]


def handoffs_on_uvloop(n: int) -> Measure | None:
    """``handoffs(n)`` on a uvloop event loop, as ``podium serve`` runs where uvloop is installed: each sample in a
    thread of its own running a new loop (``n`` untimed hand-offs first); None without uvloop."""
    try:
        import uvloop
    except ImportError:
        return None
    inner = handoffs(n)

    async def warm_then_time() -> float:
        await inner(None)
        return await inner(None)

    async def measure(_arrivals: list[Arrival] | None) -> float:
        return await in_a_thread_of_its_own(lambda: uvloop.run(warm_then_time()))

    return measure


async def switches_per_handoff(n: int) -> float | None:
    """The process's context switches (voluntary and not) per bare hand-off on uvloop, counted by the kernel over
    ``n`` of them after ``n`` untimed ones; two is the floor (one to the worker, one back). None without uvloop or
    ``getrusage``."""
    try:
        import resource

        import uvloop
    except ImportError:
        return None
    inner = handoffs(n)

    def switches() -> int:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_nvcsw + usage.ru_nivcsw

    async def count() -> float:
        await inner(None)
        before = switches()
        await inner(None)
        return (switches() - before) / n

    return await in_a_thread_of_its_own(lambda: uvloop.run(count()))


def lock_round_trips(n: int) -> Measure:
    """``n`` round trips of a lock handed between two threads on one CPU, with no event loop: what two wake-ups
    cost on this machine when nothing else is done (the floor under any hand-off to a thread and back)."""

    def run() -> float:
        ping, pong = threading.Lock(), threading.Lock()
        ping.acquire()
        pong.acquire()
        cpu = {os.sched_getaffinity(0).pop()} if hasattr(os, "sched_setaffinity") else None

        def other() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, cpu)
            for _ in range(n):
                ping.acquire()
                pong.release()

        if cpu is not None:
            os.sched_setaffinity(0, cpu)
        thread = threading.Thread(target=other, name="bench-lock")
        thread.start()
        start = time.perf_counter()
        for _ in range(n):
            ping.release()
            pong.acquire()
        seconds = time.perf_counter() - start
        thread.join()
        return seconds

    async def measure(_arrivals: list[Arrival] | None) -> float:
        return await in_a_thread_of_its_own(run)  # pinned and then gone: the process's other threads keep their CPUs

    return measure


async def measure_chains(podium: Client, engine: Engine, reps: int, arrivals: list[Arrival]) -> Chains:
    """Parts 1 and 3: noop and syncwork chains of both lengths, over MCP and in process, all interleaved."""
    engine_lags: list[float] = []

    def mcp(tool: str, n: int) -> tuple[str, Measure]:
        value, expect = ({"value": 0}, {"value": n}) if tool == "syncwork" else ({}, {})
        return f"MCP run_chain, {n} {tool}", podium_chain(podium, f"{tool} x{n}", tool, n, value, expect)

    def local(tool: str, n: int) -> tuple[str, Measure]:
        value, expect = ({"value": 0}, {"value": n}) if tool == "syncwork" else ({}, {})
        return f"in-process engine.run, {n} {tool}", engine_chain(engine, tool, n, value, expect, engine_lags)

    cases = [
        mcp("noop", SHORT),
        mcp("noop", LONG),
        local("noop", SHORT),
        local("noop", LONG),
        mcp("syncwork", SHORT),
        mcp("syncwork", LONG),
        local("syncwork", SHORT),
        local("syncwork", LONG),
        (f"{LONG} bare hand-offs to a worker thread", handoffs(LONG)),
        (f"{LONG} lock round trips, 2 threads, 1 CPU", lock_round_trips(LONG)),
    ]
    on_uvloop = handoffs_on_uvloop(LONG)
    if on_uvloop is not None:
        cases.append((f"{LONG} bare hand-offs, on uvloop", on_uvloop))
    rows = await interleaved(cases, reps, CHAIN_WARMUP_ROUNDS, arrivals)
    uvloop_row = rows[10] if on_uvloop is not None else None
    chains = ((rows[0], rows[1]), (rows[2], rows[3]), (rows[4], rows[5]), (rows[6], rows[7]))
    switches = await switches_per_handoff(SWITCH_COUNT_HANDOFFS)
    return Chains(*chains, rows[8], uvloop_row, rows[9], engine_lags, switches)


async def measure_round_trips(podium: Client, bare: Client, reps: int, arrivals: list[Arrival]) -> list[Row]:
    """Part 5: a one-step run_chain on Podium against ping on the bare server."""
    cases: list[tuple[str, Measure]] = [
        ("MCP run_chain, 1 noop (podium)", podium_chain(podium, "noop x1", "noop", 1, {}, {})),
        ("ping (bare SDK server)", bare_ping(bare)),
    ]
    return await interleaved(cases, reps, ROUND_TRIP_WARMUP_ROUNDS, arrivals)


async def cold_start(params: StdioServerParameters, mode: str, first_call: Row | None = None) -> float:
    """Seconds from spawning the server to the answer of its first ``tools/list``. With ``first_call``, the seconds
    from the spawn to the answer of a ``list_runs`` called right after it go there (``podium serve`` answers
    ``tools/list`` while its store opens; ``list_runs`` needs the store)."""
    start = time.perf_counter()
    async with connect(params, mode) as client:
        tools = await client.list_tools()
        seconds = time.perf_counter() - start
        if first_call is not None:
            runs = await client.call_tool("list_runs", {})
            first_call.samples.append(time.perf_counter() - start)
            if runs.is_error:
                raise RuntimeError(f"list_runs failed: {runs.content}")
    if not tools.tools:
        raise RuntimeError(f"{params.command} {params.args} listed no tools")
    return seconds


async def measure_cold_starts(tmp: Path, registry_file: Path, spawns: int, mode: str) -> list[Row]:
    """Part 4: ``spawns`` spawns of each server, interleaved, after one untimed spawn of each: ``podium serve`` on
    the database it used before (every start but the first; the target) and on a fresh one (reported), and when
    the restarted server first answered a call that needs its store (reported)."""
    count = 0

    def fresh_podium() -> StdioServerParameters:
        nonlocal count
        count += 1
        return podium_params(tmp / f"cold-{count:02d}.db", registry_file)

    def restarted_podium() -> StdioServerParameters:
        return podium_params(tmp / "cold-restart.db", registry_file)

    await cold_start(restarted_podium(), mode)  # creates and migrates the database the timed restarts open
    await cold_start(bare_params(), mode)
    podium = Row("podium serve (its database from before)")
    fresh = Row("podium serve (fresh database; no target)")
    bare = Row("bare SDK server (bench/bare_server.py)")
    first_call = Row("podium serve, first list_runs (no target)")
    for _ in range(spawns):
        gc.collect()
        podium.samples.append(await cold_start(restarted_podium(), mode, first_call))
        gc.collect()
        bare.samples.append(await cold_start(bare_params(), mode))
        gc.collect()
        fresh.samples.append(await cold_start(fresh_podium(), mode))
    return [podium, bare, fresh, first_call]


# -- lag after settling --------------------------------------------------------------------------------------


@dataclass
class Lags:
    """How long after its run settled each timed run_chain answer arrived (seconds), and where the times came from."""

    source: str
    by_label: dict[str, list[float]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # run ids without a finished time

    @property
    def all(self) -> list[float]:
        return [lag for lags in self.by_label.values() for lag in lags]


def epoch_of(value: Any) -> float | None:
    """An epoch time from an ISO-8601 string (``...Z`` or with an offset) or a number; None if neither."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()
    return None


def finished_in_database(db: Path, run_ids: Sequence[str]) -> dict[str, float | None]:
    """``runs.finished_at`` as the server wrote it, read (read-only) from its SQLite file."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        found: dict[str, float | None] = {}
        for run_id in run_ids:
            row = connection.execute("SELECT finished_at FROM runs WHERE id = ?", (run_id,)).fetchone()
            found[run_id] = None if row is None else row[0]
        return found
    finally:
        connection.close()


def lag_after_settled(arrivals: Sequence[Arrival], db: Path) -> Lags:
    """Lag = answer arrived - run finished, both ``time.time()`` on this machine.

    The finished time is the RunResult's ``finished_at`` when results carry one; otherwise the server's own
    ``runs.finished_at`` record (the moment the engine settled the run, before its final commit), by run id.
    """
    in_result = all("finished_at" in a.result for a in arrivals)
    if in_result:
        lags = Lags("RunResult.finished_at")
        finished = {a.run_id: epoch_of(a.result["finished_at"]) for a in arrivals}
    else:
        lags = Lags("runs.finished_at in the server's SQLite file (the RunResult has no finished_at)")
        finished = finished_in_database(db, [a.run_id for a in arrivals])
    for arrival in arrivals:
        at = finished.get(arrival.run_id)
        if at is None:
            lags.unknown.append(arrival.run_id)
            continue
        lags.by_label.setdefault(arrival.label, []).append(arrival.answered_at - at)
    return lags


# -- reporting -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: str
    target: str
    ok: bool | None  # None: could not be measured

    @property
    def word(self) -> str:
        return "n/a" if self.ok is None else "PASS" if self.ok else "FAIL"


def print_rows(title: str, rows: Sequence[Row]) -> None:
    print(title)
    header = f"  {'':<42} {'median ms':>10} {'p90 ms':>9}  samples (ms)"
    print(header)
    for row in rows:
        samples = " ".join(f"{s * 1000:.1f}" for s in row.samples)
        print(f"  {row.label:<42} {row.median * 1000:10.2f} {row.p90 * 1000:9.2f}  {samples}")
    print()


def slope_ratio_verdict(name: str, measured: float, reference: float, target: float) -> Verdict:
    """``measured / reference`` against ``target``; no verdict when a slope is not positive (the 10-step median
    came out above the 200-step one: too noisy a run, rerun with more ``--reps``)."""
    if measured <= 0 or reference <= 0:
        print("   -> a slope is not positive: too noisy to judge; rerun with more --reps\n")
        return Verdict(name, "slope <= 0 (noise)", f"<= {target:g}x", None)
    ratio = measured / reference
    print(f"   -> {ratio:.2f}x (target <= {target:g}x)\n")
    return Verdict(name, f"{ratio:.2f}x", f"<= {target:g}x", ratio <= target)


def noop_slope_verdict(chains: Chains) -> Verdict:
    mcp, engine = slope(*chains.mcp_noop), slope(*chains.engine_noop)
    mcp_fixed = chains.mcp_noop[0].median - SHORT * mcp
    engine_fixed = chains.engine_noop[0].median - SHORT * engine
    print(
        f"1. per-step slope, noop: MCP {mcp * 1e6:.1f} µs/step, in-process {engine * 1e6:.1f} µs/step\n"
        f"   (fixed cost per run, the median at {SHORT} steps less {SHORT} slopes: MCP {mcp_fixed * 1000:.2f} ms, "
        f"in-process {engine_fixed * 1000:.2f} ms)"
    )
    return slope_ratio_verdict("1. run_chain slope, MCP / in-process", mcp, engine, MCP_SLOPE_TARGET)


def lag_verdict(lags: Lags, calls: int, engine_lags: Sequence[float]) -> Verdict:
    print(f"2. answer lag after the run settled, {calls} timed run_chain calls; finished times from {lags.source}")
    every = lags.all
    if lags.unknown:
        print(f"   {len(lags.unknown)} runs have no finished time, e.g. {lags.unknown[0]}")
    for label, values in lags.by_label.items():
        print(
            f"   {label:<13} n={len(values):<4} median {statistics.median(values) * 1000:6.2f}  "
            f"p90 {percentile90(values) * 1000:6.2f}  max {max(values) * 1000:6.2f} ms"
        )
    if engine_lags:
        print(
            f"   (context, no target: in-process engine.run returned {statistics.median(engine_lags) * 1000:.2f} ms "
            f"median, {max(engine_lags) * 1000:.2f} ms max after its run's finished_at)"
        )
    if not every:
        print()
        return Verdict("2. lag after settled (max; p90)", "no finished times", f"<= {LAG_TARGET_MS:g} ms", None)
    worst, p90 = max(every) * 1000, percentile90(every) * 1000
    print(f"   all MCP calls: max {worst:.2f} ms, p90 {p90:.2f} ms (target: max <= {LAG_TARGET_MS:g} ms)\n")
    ok = worst <= LAG_TARGET_MS and not lags.unknown
    return Verdict("2. lag after settled (max; p90)", f"{worst:.2f}; {p90:.2f} ms", f"<= {LAG_TARGET_MS:g} ms", ok)


def sync_slope_verdict(chains: Chains) -> Verdict:
    sync, noop = slope(*chains.mcp_sync), slope(*chains.mcp_noop)
    engine_sync, engine_noop = slope(*chains.engine_sync), slope(*chains.engine_noop)
    uv = chains.handoff_uvloop
    on_uvloop = ""
    if uv is not None:
        each = "" if chains.switches is None else f", {chains.switches:.1f} context switches each"
        on_uvloop = f" (on uvloop, as the server runs: {uv.median / LONG * 1e6:.1f} µs{each})"
    print(
        f"3. per-step slope over MCP: syncwork {sync * 1e6:.1f} µs/step, noop {noop * 1e6:.1f} µs/step\n"
        f"   (context, no target: in process, syncwork {engine_sync * 1e6:.1f} µs/step, "
        f"noop {engine_noop * 1e6:.1f} µs/step;\n"
        f"   a bare hand-off to a worker thread and back, which every sync step pays before any work: "
        f"{chains.handoff.median / LONG * 1e6:.1f} µs{on_uvloop};\n"
        f"   under it, a lock handed to another thread on the same CPU and back, no event loop: "
        f"{chains.lock_trips.median / LONG * 1e6:.1f} µs)"
    )
    return slope_ratio_verdict("3. slope, sync+schemas / async noop", sync, noop, SYNC_SLOPE_TARGET)


def cold_start_verdict(rows: Sequence[Row]) -> Verdict:
    podium, bare, fresh, first_call = rows
    extra = podium.median - bare.median
    print(
        f"4. cold start: podium {podium.median:.3f} s, bare {bare.median:.3f} s -> {extra:+.3f} s "
        f"({podium.median / bare.median:.2f}x) (target <= +{COLD_START_MARGIN_S:g} s)\n"
        f"   (context, no target: on a fresh database, which it creates and migrates, {fresh.median:.3f} s;\n"
        f"   the first call that needs the store, list_runs right after tools/list, answered"
        f" {first_call.median:.3f} s from the spawn, {first_call.median - bare.median:+.3f} s against the bare"
        " server's tools/list)\n"
    )
    return Verdict(
        "4. cold start, podium - bare",
        f"{extra:+.3f} s ({podium.median / bare.median:.2f}x)",
        f"<= +{COLD_START_MARGIN_S:g} s",
        extra <= COLD_START_MARGIN_S,
    )


def round_trip_verdict(rows: Sequence[Row]) -> Verdict:
    podium, bare = rows
    ratio = podium.median / bare.median
    print(
        f"5. one round trip: 1-step run_chain {podium.median * 1000:.2f} ms, bare ping {bare.median * 1000:.2f} ms "
        f"-> {ratio:.2f}x (target <= {ROUND_TRIP_TARGET:g}x)\n"
    )
    return Verdict(
        "5. 1-step run_chain / bare ping", f"{ratio:.2f}x", f"<= {ROUND_TRIP_TARGET:g}x", ratio <= ROUND_TRIP_TARGET
    )


def print_summary(verdicts: Sequence[Verdict]) -> None:
    header = f"{'target':<40} {'measured':>22} {'target':>10}  verdict"
    print(header)
    print("-" * len(header))
    for v in verdicts:
        print(f"{v.name:<40} {v.measured:>22} {v.target:>10}  {v.word}")


def print_environment(reps: int, spawns: int, mode: str) -> None:
    print(
        f"Podium MCP benchmark: stdio, mode={mode}, reps={reps}, spawns={spawns} (medians of interleaved repetitions)"
    )
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, anyio {version('anyio')}, "
        f"mcp {version('mcp')}; {os.cpu_count()} CPUs ({usable} usable); {platform.platform()}"
    )


async def main(reps: int, spawns: int, mode: str) -> None:
    print_environment(reps, spawns, mode)
    arrivals: list[Arrival] = []
    with tempfile.TemporaryDirectory(prefix="podium-mcp-bench-") as name:
        tmp = Path(name)
        registry_file = write_registry(tmp)
        server_db = tmp / "server.db"
        async with (
            in_process_engine(tmp / "in-process.db") as engine,
            connect(podium_params(server_db, registry_file), mode) as podium,
        ):
            print(f"negotiated protocol with podium serve: {podium.protocol_version}")
            await podium.list_tools()
            print(
                f"warm-up: {CHAIN_WARMUP_ROUNDS} untimed rounds of the chains, {ROUND_TRIP_WARMUP_ROUNDS} of the "
                "round trips, one untimed spawn of each server\n"
            )
            print(f"parts 1-3: {reps} interleaved rounds of 8 chains ...", flush=True)
            chains = await measure_chains(podium, engine, reps, arrivals)
            async with connect(bare_params(), mode) as bare:
                await bare.list_tools()
                print(f"part 5: {reps} interleaved rounds of 2 round trips ...", flush=True)
                round_trips = await measure_round_trips(podium, bare, reps, arrivals)
        lags = lag_after_settled(arrivals, server_db)
        print(f"part 4: {spawns} interleaved spawns of each server ...\n", flush=True)
        cold = await measure_cold_starts(tmp, registry_file, spawns, mode)

    print_rows("chains (parts 1 and 3)", chains.rows)
    print_rows("cold start to the first tools/list (part 4)", cold)
    print_rows("one round trip (part 5)", round_trips)
    verdicts = [
        noop_slope_verdict(chains),
        lag_verdict(lags, len(arrivals), chains.engine_lags),
        sync_slope_verdict(chains),
        cold_start_verdict(cold),
        round_trip_verdict(round_trips),
    ]
    print_summary(verdicts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help="interleaved repetitions of each call")
    parser.add_argument("--spawns", type=int, default=DEFAULT_SPAWNS, help="timed spawns of each server (cold start)")
    parser.add_argument("--mode", choices=["auto", "legacy"], default="auto", help="mcp.Client connect mode")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: reps={QUICK_REPS}, spawns={QUICK_SPAWNS}")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    reps, spawns = (QUICK_REPS, QUICK_SPAWNS) if args.quick else (args.reps, args.spawns)
    anyio.run(partial(main, reps, spawns, args.mode))
