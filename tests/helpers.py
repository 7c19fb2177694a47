"""Helpers the tests share: the installed ``podium`` command and its servers, waits on conditions (never fixed
sleeps), and runs interrupted and resumed. (The clock tests move on instead of sleeping is a fixture:
``tests.conftest.MovableClock``.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from patterns.engine import Engine
from patterns.limits import Limits
from registry import Registry
from storage import RunRecord, StepRecord, Store
from tests.conftest import calls

REPO = Path(__file__).resolve().parents[1]
PODIUM = str(Path(sys.executable).with_name("podium"))


# -- the installed command and its servers ---------------------------------------------------------------------


def server_env() -> dict[str, str]:
    """The environment of a ``podium`` subprocess: the test tools live in tests/, importable from the repository."""
    return {"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


def serve_args(tmp_path: Path, registry_file: Path, *extra: str) -> list[str]:
    return ["serve", "--db", str(tmp_path / "podium.db"), "--registry", str(registry_file), *extra]


def podium(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the installed ``podium`` command to completion."""
    return subprocess.run(
        [PODIUM, *args], env={**server_env(), **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_port(port: int, process: anyio.abc.Process) -> None:
    """Until a server started as ``process`` accepts connections on ``port`` (it failing first is an error)."""
    with anyio.fail_after(30):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"server exited with {process.returncode}")
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.1)
                continue
            await stream.aclose()
            return


def with_payment_tool(registry_file: Path) -> Path:
    """The test registry plus ``pay@2.0.0``: slow-once declared not idempotent, like a payment."""
    data = json.loads(registry_file.read_text())
    data["tool"].append(
        {
            "name": "pay",
            "version": "2.0.0",
            "provider": {"type": "python", "target": "tests.tools:slow_once"},
            "idempotent": False,
            "output_schema": {"type": "object", "required": ["value"], "properties": {"value": {"type": "number"}}},
        }
    )
    registry_file.write_text(json.dumps(data))
    return registry_file


# -- runs ------------------------------------------------------------------------------------------------------


def counters(tmp_path: Path, *names: str) -> list[str]:
    """Files that test tools append a line to once per invocation (see ``tests.conftest.calls``)."""
    paths = []
    for name in names:
        path = tmp_path / f"{name}.txt"
        path.touch()
        paths.append(str(path))
    return paths


async def wait_for_steps(
    engine: Engine, run_id: str, paths: Sequence[str], status: str = "started"
) -> dict[str, StepRecord]:
    """Poll the store until every path in ``paths`` has a record with ``status``; return the records by path."""
    with anyio.fail_after(5):
        while True:
            records = {r.path: r for r in await engine.steps(run_id)}
            if all(p in records and records[p].status == status for p in paths):
                return records
            await anyio.sleep(0.01)


async def wait_for_calls(counter: str, n: int) -> None:
    """Until the test tools counting into ``counter`` have been invoked ``n`` times: their steps are in flight
    (a count only grows, so no window can be missed, as one between a step's start and its end can)."""
    with anyio.fail_after(10):
        while calls(counter) < n:
            await anyio.sleep(0.005)


async def until(engine: Engine, run_id: str, *statuses: str) -> RunRecord:
    """Poll until the run is in one of ``statuses``."""
    with anyio.fail_after(10):
        while (record := await engine.get(run_id)).status not in statuses:
            await anyio.sleep(0.02)
    return record


async def start_and_interrupt(
    store: Store, registry: Registry, limits: Limits, step: Any, input: Any, path: str, called: str | None = None
) -> RunRecord:
    """Start ``step`` on an engine, wait until ``path`` is in flight (and its tool, counting in the file ``called``,
    was invoked), then stop that engine (not a cancel)."""
    async with Engine(store, registry, limits) as engine:
        run = await engine.start(step, input)
        await wait_for_steps(engine, run.id, [path])
        with anyio.fail_after(5):
            while called is not None and calls(called) < 1:
                await anyio.sleep(0.01)
    return run


async def resume_and_wait(
    store: Store, registry: Registry, limits: Limits, run_id: str
) -> tuple[RunRecord, dict[str, StepRecord]]:
    """Resume the run on a new engine and wait until it settles; the run and its records by path."""
    async with Engine(store, registry, limits) as engine:
        resumed = await engine.resume(run_id)
        assert resumed.id == run_id
        with anyio.fail_after(5):
            run = await engine.wait(run_id)
        steps = {r.path: r for r in await engine.steps(run_id)}
    return run, steps
