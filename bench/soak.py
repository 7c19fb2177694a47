"""Crash soak: runs survive ``kill -9`` of the server, and no step that finished runs again.

Run from the repository root (it takes a few minutes at most)::

    .venv/bin/python -m bench.soak [--runs 100] [--kills 10] [--seed N] [--keep]
    .venv/bin/python -m bench.soak --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres [--replicas 2]

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

With ``--postgres ADMIN_URL`` the soak runs ``--replicas`` servers (default 2) on one PostgreSQL database instead:
it creates a fresh database ``podium_soak_<random>`` through the admin URL and drops it at the end, also when the
soak fails (``--keep`` keeps it). The first replica is up (schema migrated, tools registered) before the others
start, on ports of their own; each writes its own log. Each run is submitted to a random live replica, and a call
cut short is repeated, with the same idempotency key, on another live replica. At each kill moment one random
replica is killed and restarted while the others keep running: they claim the runs whose lease it stops renewing.
The completed step records are read right after the kill, as above, but the live replicas go on recording steps,
so the invocation log's size is taken after that read: a call past it came after the read, whatever the replica.
The report and the pass criteria are the same, with one more line: the replicas, and how many runs finished on a
replica other than the one that answered their submission (their final ``lease_owner``, ``host:pid:random``,
names a process that replica was never; a restarted replica keeps its place under a new pid).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from mcp import Client
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storage.database import parse_database_url
from storage.errors import UnsupportedDatabase

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

    def server_log(self, name: str) -> Path:
        return self.root / f"{name}.log"


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

    def __init__(self, name: str, db_url: str, files: Files, port: int) -> None:
        self.name = name
        self.command = [PODIUM, "serve", "--http", "--port", str(port), "--db", db_url]
        self.command += ["--registry", str(files.registry)]
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.port = port
        self.log = files.server_log(name)
        self.up = anyio.Event()
        """Set once the server listens; replaced by a fresh event at each kill."""
        self.process: anyio.abc.Process | None = None
        self.pids: list[int] = []
        """The process ids it had, one per start."""

    async def start(self) -> None:
        with self.log.open("ab") as log:  # the child keeps a descriptor of its own
            process = self.process = await anyio.open_process(
                self.command, env=podium_env(), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.pids.append(process.pid)
        with anyio.fail_after(PORT_TIMEOUT_S):
            while True:
                if process.returncode is not None:
                    raise SoakError(f"{self.name} exited with status {process.returncode}; see its log")
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
        """Terminate it if it runs, even from a cancelled scope."""
        with anyio.CancelScope(shield=True):
            if self.process is not None and self.process.returncode is None:
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


@asynccontextmanager
async def database(files: Files, admin_url: str | None, keep: bool) -> AsyncIterator[str]:
    """The URL of the database the servers share: the soak's SQLite file or, given the URL of an existing PostgreSQL
    database, a new database on that server, dropped afterwards (unless ``keep``) even if the soak fails."""
    if admin_url is None:
        yield files.db_url
        return
    admin = create_async_engine(parse_database_url(admin_url).url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"podium_soak_{uuid.uuid4().hex[:12]}"
    url = admin.url.set(database=name)
    try:
        async with admin.connect() as connection:  # CREATE and DROP DATABASE cannot run in a transaction
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with anyio.CancelScope(shield=True):
                if keep:
                    print(f"database kept: {url.render_as_string(hide_password=True)}")
                else:
                    async with admin.connect() as connection:
                        await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        with anyio.CancelScope(shield=True):
            await admin.dispose()


async def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one statement, on a connection of its own."""
    engine = create_async_engine(parse_database_url(db_url).url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(text(sql))]
    finally:
        await engine.dispose()


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
    server: str
    pid: int
    after_s: float
    """How long after the last start-up (of any server)."""
    log_offset: int
    """The size of the invocation log at the kill: lines past it were written after the kill."""
    completed: frozenset[Step]
    unsettled_runs: int


# -- the soak ------------------------------------------------------------------------------------------------


@dataclass
class Soak:
    files: Files
    db_url: str
    servers: list[Server]
    rng: random.Random
    replicas: bool
    """Replicas on PostgreSQL (``--postgres``), not the one server on SQLite."""
    run_ids: dict[str, str] = field(default_factory=dict)
    submitted_to: dict[str, Server] = field(default_factory=dict)
    """Run id: the server whose answer gave it."""
    kills: list[Kill] = field(default_factory=list)
    attention: set[Step] = field(default_factory=set)
    """Steps whose interruption left their run ``needs_attention``."""
    resolved: dict[Step, str] = field(default_factory=dict)
    unresolved: dict[Step, str] = field(default_factory=dict)

    async def live_server(self, avoid: Server | None) -> Server:
        """A random server that is up, other than ``avoid`` if another one is; waits while none is up."""
        while not (live := [server for server in self.servers if server.up.is_set()]):
            await self.servers[0].up.wait()  # none is up: each is down for a restart, the first as well
        return self.rng.choice([server for server in live if server is not avoid] or live)

    async def submit(self, submission: Submission, delay: float) -> None:
        """Submit once a server is up, and again (to another server if another is up) after a failed call: the
        idempotency key keeps it one run."""
        await anyio.sleep(delay)
        deadline = anyio.current_time() + SUBMIT_TIMEOUT_S
        failed: Server | None = None
        while True:
            server = await self.live_server(avoid=failed)
            try:
                run = await call(server.url, submission.tool, submission.arguments)
            except Exception as exc:  # a kill cuts a call short in many ways: connection, protocol, timeout
                if anyio.current_time() > deadline:
                    raise SoakError(f"run {submission.key} could not be submitted: {exc!r}") from exc
                failed = server
                await anyio.sleep(RETRY_S)
                continue
            self.run_ids[submission.key] = run["run_id"]
            self.submitted_to[run["run_id"]] = server
            return

    async def kill_and_restart(self, server: Server, after_s: float) -> None:
        pid = await server.kill()
        completed = frozenset(await query(self.db_url, "SELECT run_id, path FROM steps WHERE status = 'completed'"))
        unsettled = (await query(self.db_url, "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"))[0][0]
        # After the read: with replicas, the live ones go on calling tools, and a line past this offset comes after it.
        offset = self.files.log.stat().st_size if self.files.log.exists() else 0
        self.kills.append(Kill(server.name, pid, after_s, offset, completed, unsettled))
        await server.start()

    async def resolve(self, run_id: str, path: str) -> bool:
        """Skip the interrupted ledger step with the output of its entry if it was posted, else retry it. Returns
        whether the run was reopened."""
        step = (run_id, path)
        if step in self.resolved or step in self.unresolved:
            return False
        posted = [entry for _, entry in read_lines(self.files.ledger) if (entry["run"], entry["step"]) == step]
        db = ("--db", self.db_url)
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
            async with Client(self.servers[0].url) as client:
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


async def examine(soak: Soak) -> Findings:
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
        (r, p): t for r, p, t in await query(soak.db_url, "SELECT run_id, path, tool FROM steps WHERE kind = 'tool'")
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


async def moved_runs(soak: Soak) -> int:
    """How many submitted runs finished on a server other than the one that answered their submission: the last
    lease owner (``host:pid:random``) names a process it never was."""
    owners: dict[str, str | None] = dict(await query(soak.db_url, "SELECT id, lease_owner FROM runs"))
    return sum(
        1
        for run, server in soak.submitted_to.items()
        if (owner := owners.get(run)) is not None and int(owner.rsplit(":", 2)[1]) not in server.pids
    )


async def report(soak: Soak, submissions: Sequence[Submission], settled: bool) -> bool:
    """Print the report; returns whether the soak passed."""
    findings = await examine(soak)
    statuses: dict[str, str] = dict(await query(soak.db_url, "SELECT id, status FROM runs"))
    errors = {
        r: json.loads(e)["message"]
        for r, e in await query(soak.db_url, "SELECT id, error FROM runs WHERE error IS NOT NULL")
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
        killed, since = (
            (f"kill {n:2d} ({kill.server})", "the last start-up") if soak.replicas else (f"kill {n:2d}", "start-up")
        )
        print(
            f"{killed}, {kill.after_s:.1f} s after {since}: {plural(kill.unsettled_runs, 'run')} unsettled, "
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
    if soak.replicas:
        moved = f"{len(soak.servers)}; runs finished on a replica other than the one they were submitted to: "
        rows.insert(2, ("replicas", moved + str(await moved_runs(soak))))
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
    server_errors = {
        server.name: [line for line in server.log.read_text().splitlines() if line.startswith("ERROR")]
        for server in soak.servers
    }
    if problems or any(server_errors.values()):
        print()
    for line in problems:
        print(f"  {line}")
    for name, lines in server_errors.items():
        if lines:
            print(f"{name} log: {plural(len(lines), 'ERROR line')}, the first:")
            for line in lines[:5]:
                print(f"  {line}")
    return not (lost or not_finished or twice or findings.mismatches)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Options:
    runs: int
    kills: int
    seed: int
    keep: bool
    postgres: str | None
    """The admin URL of a PostgreSQL server: run replicas on a new database there (None: one server on SQLite)."""
    replicas: int


async def soak(files: Files, options: Options) -> bool:
    rng = random.Random(options.seed)
    files.registry.write_text(json.dumps(REGISTRY), encoding="utf-8")
    trees = Trees(rng, files)
    submissions = [trees.submission(f"soak-{options.seed}-{i}", options.kills) for i in range(options.runs)]
    delays = [rng.uniform(*KILL_DELAY_S) for _ in range(options.kills)]
    victims = [rng.randrange(options.replicas) for _ in range(options.kills)]
    names = ["server"] if options.postgres is None else [f"replica-{n}" for n in range(1, options.replicas + 1)]
    async with database(files, options.postgres, options.keep) as db_url:
        servers = [Server(name, db_url, files, free_port()) for name in names]
        state = Soak(files, db_url, servers, rng, replicas=options.postgres is not None)
        try:
            for server in servers:  # one at a time: the first migrates the schema and registers the tools
                await server.start()
            async with anyio.create_task_group() as group:
                for window, (delay, victim) in enumerate(zip(delays, victims, strict=True)):
                    for submission in submissions:
                        if submission.window == window:
                            group.start_soon(state.submit, submission, submission.at * delay)
                    await anyio.sleep(delay)
                    await state.kill_and_restart(servers[victim], delay)
            settled = await state.settle()
        finally:
            for server in servers:
                await server.stop()
        return await report(state, submissions, settled)


def main(options: Options) -> int:
    started = time.monotonic()
    replicas = "" if options.postgres is None else f", {options.replicas} replicas on PostgreSQL"
    print(
        f"Podium crash soak: {options.runs} runs, {options.kills} kills, seed {options.seed}, lease {LEASE_S} s"
        + replicas
    )
    files = Files(Path(tempfile.mkdtemp(prefix="podium-soak-")))
    try:
        ok = anyio.run(soak, files, options)
    finally:
        if options.keep:
            print(f"files kept in {files.root}")
        else:
            shutil.rmtree(files.root)
    print(f"elapsed: {time.monotonic() - started:.1f} s")
    again = f"--seed {options.seed}"
    if options.postgres is not None:
        admin = make_url(options.postgres).render_as_string(hide_password=True)
        again += f" --postgres {admin} --replicas {options.replicas}"
    print(f"{'PASS' if ok else 'FAIL'} (repeat with {again})")
    return 0 if ok else 1


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def postgres_url(text: str) -> str:
    try:
        dialect = parse_database_url(text).dialect
    except UnsupportedDatabase as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if dialect != "postgresql":
        raise argparse.ArgumentTypeError(f"{text} is not a PostgreSQL URL")
    return text


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=positive, default=100, help="runs to submit")
    parser.add_argument("--kills", type=positive, default=10, help="times to kill -9 a server and restart it")
    parser.add_argument("--seed", type=int, default=None, help="seed of the trees, timings and kills (default: random)")
    parser.add_argument("--keep", action="store_true", help="keep the database, logs and ledger, and print where")
    parser.add_argument(
        "--postgres",
        type=postgres_url,
        metavar="ADMIN_URL",
        help="run replicas on a new database on this PostgreSQL server (the URL of an existing database to connect to)",
    )
    parser.add_argument("--replicas", type=positive, help="servers sharing the PostgreSQL database (default: 2)")
    args = parser.parse_args(argv)
    if args.replicas is not None and args.postgres is None:
        parser.error("--replicas needs --postgres: replicas share a PostgreSQL database")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    replicas = 1 if args.postgres is None else args.replicas or 2
    return Options(args.runs, args.kills, seed, args.keep, args.postgres, replicas)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
