"""Crash soak: runs survive ``kill -9`` of the server, and no step that finished runs again.

Run from the repository root (it takes a few minutes at most)::

    .venv/bin/python -m bench.soak [--runs 100] [--kills 10] [--seed N] [--keep]

One ``podium serve --http`` subprocess (``PODIUM_LEASE_S=2``) on a fresh SQLite file, with the tools of
``bench/soak_tools.py`` in a registry file: idempotent ones that sleep 0.05-1.5 s and compute a number, and
``post-ledger-entry``, which is not idempotent, appends an entry to a ledger file and returns within 0.2 s.
Every tool call logs a ``start`` and an ``end`` line (run id, step path, pid, time) to an invocation log. The soak:

- submits ``--runs`` runs over MCP (``run_chain`` of 3-6 steps, ``fan_out`` with strategy ``all``, and chains
  holding a fan-out; about 40 % with a ledger step), spread over the whole kill phase, each with ``wait_s`` 0.1
  and an idempotency key, so that a call a kill cuts short is repeated without starting a second run;
- kills the server with SIGKILL ``--kills`` times, 1-4 s apart, and restarts it each time; right after each kill
  (server dead) it reads which step records the database holds ``completed``;
- after the last restart, polls ``get_run`` until every run has settled. A run left ``needs_attention`` (a ledger
  step was in flight at a kill) is resolved as an operator would, with ``podium runs skip|retry --detach`` (the
  server resumes it): skip with the output its ledger entry holds if the entry was posted, else retry.

The report counts runs lost (acknowledged run ids missing from the database), runs not finished (not succeeded,
partial, failed, rejected, cancelled or timed_out at the end; an unresolved ``needs_attention`` counts here) and
steps run twice: (a) a ledger step whose entry was posted more than once, (b) a step recorded ``completed`` at a
kill and invoked again after it, (c) a ledger step invoked again without an operator's retry. Idempotent steps
interrupted by a kill and run again are allowed, and counted apart. As a check on the soak itself, every logged
invocation must name a tool step that the database records at that path. The exit status is 0 only if runs lost,
runs not finished, steps run twice and those mismatches are all 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
from mcp import Client

REPO_ROOT = Path(__file__).resolve().parent.parent
PODIUM = str(Path(sys.executable).with_name("podium"))

LEASE_S = 2
WAIT_S = 0.1  # options.wait_s: a run-starting call returns at once with the run id
KILL_DELAY_S = (1.0, 4.0)
TOOL_SLEEP_S = (0.05, 1.5)
LEDGER_SLEEP_S = (0.02, 0.2)
LEDGER_SHARE = 0.4
PORT_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
SUBMIT_TIMEOUT_S = 120.0
SETTLE_TIMEOUT_S = 300.0
RETRY_S = 0.2
POLL_S = 0.5

FINISHED = ("succeeded", "partial", "failed", "rejected", "cancelled", "timed_out")
IDEMPOTENT_TOOLS = ("count-primes", "collatz", "hash-value")
LEDGER_TOOL = "post-ledger-entry"
SHAPES = ("chain", "fan-out", "chain+fan-out")
Step = tuple[str, str]  # (run id, step path)


def _tool(name: str, function: str, idempotent: bool, fields: dict[str, Any]) -> dict[str, Any]:
    """A registry entry. Every soak tool takes its run id, step path and log file besides its own fields."""
    properties = {"run": {"type": "string"}, "step": {"type": "string"}, "log": {"type": "string"}, **fields}
    return {
        "name": name,
        "version": "1.0.0",
        "provider": {"type": "python", "target": f"bench.soak_tools:{function}"},
        "idempotent": idempotent,
        "input_schema": {
            "type": "object",
            "required": sorted(properties),
            "additionalProperties": False,
            "properties": properties,
        },
        "output_schema": {"type": "object", "required": ["value"], "properties": {"value": {"type": "integer"}}},
    }


_SECONDS = {"seconds": {"type": "number", "minimum": 0}}
_VALUE = {"value": {"type": "integer"}}
REGISTRY: dict[str, Any] = {
    "tool": [
        _tool("count-primes", "count_primes", True, {**_SECONDS, **_VALUE}),
        _tool("collatz", "collatz", True, {**_SECONDS, **_VALUE}),
        _tool("hash-value", "hash_value", True, {**_SECONDS, **_VALUE}),
        _tool("total", "total", True, {**_SECONDS, "values": {"type": "array", "items": {"type": "integer"}}}),
        _tool(
            LEDGER_TOOL,
            "post_ledger_entry",
            False,
            {**_SECONDS, "ledger": {"type": "string"}, "amount": {"type": "integer"}},
        ),
    ]
}


class SoakError(Exception):
    """The soak could not do its part (start the server, submit a run): not a finding about runs."""


@dataclass(frozen=True)
class Files:
    """Everything one soak writes, in one temporary directory."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "soak.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def registry(self) -> Path:
        return self.root / "tools.json"

    @property
    def log(self) -> Path:
        return self.root / "invocations.jsonl"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"


# -- the runs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    key: str
    shape: str
    ledger: bool
    tool: str
    arguments: dict[str, Any]
    window: int
    """The kill window (one server's life) the run is submitted in..."""
    at: float
    """...and when in it, as a fraction of the window."""


class Trees:
    """Random step trees. Each tool step's input carries the run id and the step's path, spelled out here as the
    engine spells it (``2``, ``fan_out/1``, ``2/fan_out/reduce``), so that the invocation log names step records."""

    def __init__(self, rng: random.Random, files: Files) -> None:
        self.rng = rng
        self.files = files

    def _seconds(self, bounds: tuple[float, float] = TOOL_SLEEP_S) -> float:
        return round(self.rng.uniform(*bounds), 3)

    @staticmethod
    def _common(path: str) -> dict[str, Any]:
        return {"run": {"$": "run.id"}, "step": path, "log": {"$": "run.input.log"}}

    def compute(self, path: str, value: str) -> dict[str, Any]:
        tool = self.rng.choice(IDEMPOTENT_TOOLS)
        return {"tool": tool, "input": {**self._common(path), "seconds": self._seconds(), "value": {"$": value}}}

    def ledger(self, path: str, value: str) -> dict[str, Any]:
        fields = {"seconds": self._seconds(LEDGER_SLEEP_S), "ledger": {"$": "run.input.ledger"}, "amount": {"$": value}}
        return {"tool": LEDGER_TOOL, "input": {**self._common(path), **fields}}

    def fan_out(self, path: str, ledger: bool, reduce: bool) -> dict[str, Any]:
        """A fan-out's arguments; its branches (and reduce) read ``input``, what flows into the fan-out."""
        base = f"{path}/fan_out" if path else "fan_out"
        count = self.rng.randint(2, 5)
        ledger_at = self.rng.randrange(count) if ledger else -1
        branches = [
            self.ledger(f"{base}/{i}", "input.value") if i == ledger_at else self.compute(f"{base}/{i}", "input.value")
            for i in range(count)
        ]
        spec: dict[str, Any] = {"branches": branches, "strategy": "all"}
        if reduce:
            fields = {"seconds": self._seconds(), "values": {"$": "results[*].value"}}
            spec["reduce"] = {"tool": "total", "input": {**self._common(f"{base}/reduce"), **fields}}
        return spec

    def chain(self, fan_out: bool, ledger: bool) -> list[dict[str, Any]]:
        count = self.rng.randint(3, 6)
        fan_at = self.rng.randrange(count) if fan_out else -1
        ledger_at = self.rng.randrange(count) if ledger else -1  # at the fan-out's place: in one of its branches
        steps = []
        for i in range(count):
            value = "input.value" if i == 0 else "prev.value"
            if i == fan_at:
                steps.append({"fan_out": self.fan_out(str(i), ledger=ledger_at == i, reduce=True)})
            elif i == ledger_at:
                steps.append(self.ledger(str(i), value))
            else:
                steps.append(self.compute(str(i), value))
        return steps

    def submission(self, key: str, windows: int) -> Submission:
        shape = self.rng.choice(SHAPES)
        ledger = self.rng.random() < LEDGER_SHARE
        run_input = {
            "value": self.rng.randrange(1, 10**6),
            "log": str(self.files.log),
            "ledger": str(self.files.ledger),
        }
        common = {"input": run_input, "options": {"wait_s": WAIT_S, "idempotency_key": key}}
        if shape == "fan-out":
            tool, arguments = "fan_out", {**self.fan_out("", ledger, reduce=self.rng.random() < 0.5), **common}
        else:
            tool, arguments = "run_chain", {"steps": self.chain(shape == "chain+fan-out", ledger), **common}
        return Submission(key, shape, ledger, tool, arguments, self.rng.randrange(windows), self.rng.random())


# -- the server ----------------------------------------------------------------------------------------------


def podium_env() -> dict[str, str]:
    """The soak tools live in bench/, importable from the repository root."""
    return {
        "PYTHONPATH": str(REPO_ROOT),
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PODIUM_LEASE_S": str(LEASE_S),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``podium serve --http`` as a subprocess that the soak kills and starts again with the same arguments."""

    def __init__(self, files: Files, port: int, log: IO[bytes]) -> None:
        self.command = [PODIUM, "serve", "--http", "--port", str(port), "--db", files.db_url]
        self.command += ["--registry", str(files.registry)]
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.port = port
        self.log = log
        self.up = anyio.Event()
        """Set once the server listens; replaced by a fresh event at each kill."""
        self.process: anyio.abc.Process | None = None

    async def start(self) -> None:
        process = self.process = await anyio.open_process(
            self.command, env=podium_env(), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log
        )
        with anyio.fail_after(PORT_TIMEOUT_S):
            while True:
                if process.returncode is not None:
                    raise SoakError(f"the server exited with status {process.returncode}; see its log")
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", self.port)
                except OSError:
                    await anyio.sleep(0.05)
                    continue
                await stream.aclose()
                break
        self.up.set()

    async def kill(self) -> int:
        """SIGKILL: no shutdown, no lease release. Returns the dead server's pid."""
        assert self.process is not None
        self.up = anyio.Event()
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.aclose()
        return self.process.pid

    async def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        await self.process.aclose()


async def call(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One MCP tool call on a connection of its own (a kill drops connections)."""
    with anyio.fail_after(CALL_TIMEOUT_S):
        async with Client(url) as client:
            result = await client.call_tool(tool, arguments)
    content: dict[str, Any] | None = result.structured_content
    if result.is_error or content is None:
        raise SoakError(f"{tool} answered with an error: {result.content}")
    return content


async def podium_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([PODIUM, *args], env=podium_env(), cwd=REPO_ROOT, check=False)


# -- the evidence --------------------------------------------------------------------------------------------


def query(db: Path, sql: str) -> list[Any]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def read_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON lines of ``path``, each with the byte offset where it starts."""
    if not path.exists():
        return []
    lines = []
    offset = 0
    for raw in path.read_bytes().splitlines(keepends=True):
        lines.append((offset, json.loads(raw)))
        offset += len(raw)
    return lines


@dataclass(frozen=True)
class Kill:
    pid: int
    after_s: float
    log_offset: int
    """The size of the invocation log at the kill: lines past it were written after the kill."""
    completed: frozenset[Step]
    unsettled_runs: int


# -- the soak ------------------------------------------------------------------------------------------------


@dataclass
class Soak:
    files: Files
    server: Server
    run_ids: dict[str, str] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)
    attention: set[Step] = field(default_factory=set)
    """Steps whose interruption left their run ``needs_attention``."""
    resolved: dict[Step, str] = field(default_factory=dict)
    unresolved: dict[Step, str] = field(default_factory=dict)

    async def submit(self, submission: Submission, delay: float) -> None:
        """Submit once the server is up, and again after a failed call: the idempotency key keeps it one run."""
        await anyio.sleep(delay)
        deadline = anyio.current_time() + SUBMIT_TIMEOUT_S
        while True:
            await self.server.up.wait()
            try:
                run = await call(self.server.url, submission.tool, submission.arguments)
            except Exception as exc:  # a kill cuts a call short in many ways: connection, protocol, timeout
                if anyio.current_time() > deadline:
                    raise SoakError(f"run {submission.key} could not be submitted: {exc!r}") from exc
                await anyio.sleep(RETRY_S)
                continue
            self.run_ids[submission.key] = run["run_id"]
            return

    async def kill_and_restart(self, after_s: float) -> None:
        pid = await self.server.kill()
        db = self.files.db
        completed = frozenset(query(db, "SELECT run_id, path FROM steps WHERE status = 'completed'"))
        unsettled = query(db, "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')")[0][0]
        offset = self.files.log.stat().st_size if self.files.log.exists() else 0
        self.kills.append(Kill(pid, after_s, offset, completed, unsettled))
        await self.server.start()

    async def resolve(self, run_id: str, path: str) -> bool:
        """Skip the interrupted ledger step with the output of its entry if it was posted, else retry it. Returns
        whether the run was reopened."""
        step = (run_id, path)
        if step in self.resolved or step in self.unresolved:
            return False
        posted = [entry for _, entry in read_lines(self.files.ledger) if (entry["run"], entry["step"]) == step]
        db = ("--db", self.files.db_url)
        if posted:
            action, output = "skip", json.dumps(posted[-1]["output"])
            done = await podium_cli("runs", "skip", run_id, "--step", path, "--output", output, "--detach", *db)
        else:
            action = "retry"
            done = await podium_cli("runs", "retry", run_id, "--step", path, "--detach", *db)
        if done.returncode != 0:
            self.unresolved[step] = f"podium runs {action} exited {done.returncode}: {done.stderr.decode().strip()}"
            return False
        self.resolved[step] = action
        return True

    async def settle(self) -> bool:
        """Poll until every run has settled or waits for an operator who is not there. Returns whether they did."""
        pending = set(self.run_ids.values())
        with anyio.move_on_after(SETTLE_TIMEOUT_S):
            async with Client(self.server.url) as client:
                while pending:
                    for run_id in sorted(pending):
                        result = await client.call_tool("get_run", {"run_id": run_id, "include_steps": False})
                        run: dict[str, Any] = result.structured_content or {}
                        status = None if result.is_error else run.get("status")
                        if status == "needs_attention":
                            self.attention.add((run_id, run["error"]["step"]))
                            if not await self.resolve(run_id, run["error"]["step"]):
                                pending.discard(run_id)
                        elif status is None or status in FINISHED:  # None: not found, counted as lost
                            pending.discard(run_id)
                    await anyio.sleep(POLL_S if pending else 0)
        return not pending


@dataclass(frozen=True)
class Findings:
    calls: int
    """Tool invocations (``start`` lines)."""
    side_effect_twice: list[Step]
    completed_then_invoked: list[Step]
    ledger_reinvoked: list[Step]
    idempotent_reruns: dict[Step, int]
    """Interrupted idempotent steps invoked again, and how many extra times."""
    mismatches: list[str]
    cut_short: list[int]
    """Tool calls in flight at each kill: a ``start`` line of the killed pid with no ``end``."""


def examine(soak: Soak) -> Findings:
    log = read_lines(soak.files.log)
    starts: dict[Step, list[int]] = defaultdict(list)
    tools: dict[Step, str] = {}
    ended: set[tuple[str, str, int]] = set()
    for offset, line in log:
        step = (line["run"], line["step"])
        tools[step] = line["tool"]
        if line["event"] == "start":
            starts[step].append(offset)
        else:
            ended.add((*step, line["pid"]))
    posted = Counter((entry["run"], entry["step"]) for _, entry in read_lines(soak.files.ledger))
    records = {
        (r, p): t for r, p, t in query(soak.files.db, "SELECT run_id, path, tool FROM steps WHERE kind = 'tool'")
    }
    reruns = {step: len(offsets) - 1 for step, offsets in starts.items() if len(offsets) > 1}
    after_kill = {
        s for kill in soak.kills for s in kill.completed if any(o > kill.log_offset for o in starts.get(s, []))
    }
    retried = {step for step, action in soak.resolved.items() if action == "retry"}
    return Findings(
        calls=sum(len(offsets) for offsets in starts.values()),
        side_effect_twice=sorted(step for step, n in posted.items() if n > 1),
        completed_then_invoked=sorted(after_kill),
        ledger_reinvoked=sorted(s for s, n in reruns.items() if tools[s] == LEDGER_TOOL and n > (s in retried)),
        idempotent_reruns={s: n for s, n in reruns.items() if tools[s] != LEDGER_TOOL and s not in after_kill},
        mismatches=[
            f"{run} {path}: logged {tool}, recorded {records.get((run, path))}"
            for (run, path), tool in tools.items()
            if records.get((run, path)) != tool
        ],
        cut_short=[
            sum(
                1
                for _, line in log
                if line["event"] == "start"
                and line["pid"] == kill.pid
                and (line["run"], line["step"], kill.pid) not in ended
            )
            for kill in soak.kills
        ],
    )


def report(soak: Soak, submissions: Sequence[Submission], settled: bool) -> bool:
    """Print the report; returns whether the soak passed."""
    findings = examine(soak)
    statuses: dict[str, str] = dict(query(soak.files.db, "SELECT id, status FROM runs"))
    errors = {
        r: json.loads(e)["message"]
        for r, e in query(soak.files.db, "SELECT id, error FROM runs WHERE error IS NOT NULL")
    }
    ids = list(soak.run_ids.values())
    lost = [r for r in ids if r not in statuses]
    not_finished = [r for r in ids if r in statuses and statuses[r] not in FINISHED]
    failed = [r for r in ids if statuses.get(r) == "failed"]
    twice = len(findings.side_effect_twice) + len(findings.completed_then_invoked) + len(findings.ledger_reinvoked)
    shapes = Counter(s.shape for s in submissions)
    actions = Counter(soak.resolved.values())

    print()
    for n, (kill, cut) in enumerate(zip(soak.kills, findings.cut_short, strict=True), 1):
        print(
            f"kill {n:2d}, {kill.after_s:.1f} s after start-up: {plural(kill.unsettled_runs, 'run')} unsettled, "
            f"{plural(cut, 'tool call')} cut short, {len(kill.completed)} step records completed"
        )
    print()
    rows = [
        (
            "runs submitted",
            f"{len(ids)} ({', '.join(f'{shapes[s]} {s}' for s in SHAPES)}; "
            f"{sum(s.ledger for s in submissions)} with a ledger step)",
        ),
        ("kills (SIGKILL, then restart)", str(len(soak.kills))),
        ("runs lost", str(len(lost))),
        ("runs not finished", str(len(not_finished)) + ("" if settled else f" (gave up after {SETTLE_TIMEOUT_S:g} s)")),
        ("runs that failed", str(len(failed))),
        ("final statuses", ", ".join(f"{status} {n}" for status, n in Counter(statuses.values()).most_common())),
        (
            "needs_attention",
            f"{len(soak.attention)} (resolved {actions['skip']} by skip, {actions['retry']} by retry; "
            f"{len(soak.unresolved)} could not be)",
        ),
        ("steps run twice", str(twice)),
        ("  (a) ledger entry posted twice", str(len(findings.side_effect_twice))),
        ("  (b) completed at a kill, invoked after", str(len(findings.completed_then_invoked))),
        ("  (c) ledger step invoked again unasked", str(len(findings.ledger_reinvoked))),
        (
            "idempotent steps re-run after interruption (allowed)",
            f"{len(findings.idempotent_reruns)} ({sum(findings.idempotent_reruns.values())} extra calls)",
        ),
        ("tool calls", f"{findings.calls}; logged calls with no matching step record: {len(findings.mismatches)}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name + ':':<{width + 1}} {value}")

    problems = [
        *(f"lost: {r}" for r in lost),
        *(f"not finished: {r} {statuses[r]}: {errors.get(r)}" for r in not_finished),
        *(f"failed: {r}: {errors.get(r)}" for r in failed),
        *(f"(a) {r} {p}" for r, p in findings.side_effect_twice),
        *(f"(b) {r} {p}" for r, p in findings.completed_then_invoked),
        *(f"(c) {r} {p}" for r, p in findings.ledger_reinvoked),
        *(f"unresolved: {r} {p}: {why}" for (r, p), why in soak.unresolved.items()),
        *(f"mismatch: {m}" for m in findings.mismatches),
    ]
    server_errors = [line for line in soak.files.server_log.read_text().splitlines() if line.startswith("ERROR")]
    if problems or server_errors:
        print()
    for line in problems:
        print(f"  {line}")
    if server_errors:
        print(f"server log: {plural(len(server_errors), 'ERROR line')}, the first:")
        for line in server_errors[:5]:
            print(f"  {line}")
    return not (lost or not_finished or twice or findings.mismatches)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


async def soak(files: Files, runs: int, kills: int, seed: int) -> bool:
    rng = random.Random(seed)
    files.registry.write_text(json.dumps(REGISTRY), encoding="utf-8")
    trees = Trees(rng, files)
    submissions = [trees.submission(f"soak-{seed}-{i}", kills) for i in range(runs)]
    delays = [rng.uniform(*KILL_DELAY_S) for _ in range(kills)]
    with files.server_log.open("ab") as server_log:
        state = Soak(files, Server(files, free_port(), server_log))
        await state.server.start()
        async with anyio.create_task_group() as group:
            for window, delay in enumerate(delays):
                for submission in submissions:
                    if submission.window == window:
                        group.start_soon(state.submit, submission, submission.at * delay)
                await anyio.sleep(delay)
                await state.kill_and_restart(delay)
        try:
            settled = await state.settle()
        finally:
            await state.server.stop()
    return report(state, submissions, settled)


def main(runs: int, kills: int, seed: int, keep: bool) -> int:
    started = time.monotonic()
    print(f"Podium crash soak: {runs} runs, {kills} kills, seed {seed}, lease {LEASE_S} s")
    files = Files(Path(tempfile.mkdtemp(prefix="podium-soak-")))
    try:
        ok = anyio.run(soak, files, runs, kills, seed)
    finally:
        if keep:
            print(f"files kept in {files.root}")
        else:
            shutil.rmtree(files.root)
    print(f"elapsed: {time.monotonic() - started:.1f} s")
    print(f"{'PASS' if ok else 'FAIL'} (repeat with --seed {seed})")
    return 0 if ok else 1


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=positive, default=100, help="runs to submit")
    parser.add_argument("--kills", type=positive, default=10, help="times to kill -9 the server and restart it")
    parser.add_argument("--seed", type=int, default=None, help="seed of the trees, timings and kills (default: random)")
    parser.add_argument("--keep", action="store_true", help="keep the database, logs and ledger, and print where")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    sys.exit(main(args.runs, args.kills, seed, args.keep))
