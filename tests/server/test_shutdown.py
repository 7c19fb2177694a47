"""SIGTERM or SIGINT to `podium serve`: the step in flight finishes, no new step starts, the leases are released, and
the next server resumes the run at once instead of after its lease expires."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from storage import Store
from tests.conftest import calls
from tests.helpers import PODIUM, REPO, free_port, serve_args, server_env, wait_for_port

pytestmark = pytest.mark.anyio

LONG_LEASE = {"PODIUM_LEASE_S": "60", "PODIUM_SHUTDOWN_GRACE_S": "20"}


def _steps(first: Path, second: Path) -> list[dict[str, Any]]:
    return [
        {"tool": "sleepy", "input": {"seconds": 4, "value": 5, "counter": str(first)}},
        {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": str(second)}},
    ]


async def _in_flight(counter: Path) -> None:
    with anyio.fail_after(20):
        while calls(str(counter)) < 1:
            await anyio.sleep(0.02)


def _stdio_server_pid(db: Path) -> int:
    """The pid of the `podium serve --db DB` process the stdio client started (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and str(db).encode() in argv:
                return int(entry.name)
    raise AssertionError(f"no podium serve process for {db}")


async def _stopped_cleanly(db: Path, run_id: str) -> None:
    """The step in flight completed, the next never started, and the run awaits another server, lease released."""
    async with Store.open(f"sqlite:///{db}") as store:
        run = await store.get_run(run_id)
        statuses = {r.path: r.status for r in await store.get_steps(run_id)}
    assert statuses == {"": "started", "0": "completed"}
    assert (run.status, run.lease_expires_at) == ("running", 0.0)


async def _resumed_at_once(tmp_path: Path, registry_file: Path, run_id: str) -> dict[str, Any]:
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port))]
    server = await anyio.open_process(args, env={**server_env(), **LONG_LEASE}, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        with anyio.fail_after(30):  # well within the 60 s lease the stopped server would otherwise have held
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                done = await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 20})
    finally:
        server.terminate()
        await server.wait()
    assert done.structured_content is not None
    return dict(done.structured_content)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_http_server_drains_on_a_stop_signal(tmp_path: Path, registry_file: Path, stop: signal.Signals) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.touch()
    second.touch()
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port))]
    server = await anyio.open_process(args, env={**server_env(), **LONG_LEASE}, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            started = await client.call_tool("run_chain", {"steps": _steps(first, second), "options": {"wait_s": 0.1}})
            assert started.structured_content is not None
            run_id = started.structured_content["run_id"]
            await _in_flight(first)
            answers: list[dict[str, Any]] = []
            waiting = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                waiting.set()  # the server reports progress: the call is waiting on it

            async def wait_run() -> None:
                waited = await client.call_tool(
                    "wait_run", {"run_id": run_id, "timeout_s": 40}, progress_callback=on_progress
                )
                assert waited.structured_content is not None
                answers.append(dict(waited.structured_content))

            with anyio.fail_after(15):  # a caller waiting on the run gets an answer, not a dropped connection
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait_run)
                    await waiting.wait()
                    server.send_signal(stop)
        assert [(a["status"], "wait_run" in a["next_action"]) for a in answers] == [("running", True)]
        with anyio.fail_after(20):
            await server.wait()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

    await _stopped_cleanly(tmp_path / "podium.db", run_id)
    done = await _resumed_at_once(tmp_path, registry_file, run_id)
    assert (done["status"], done["output"]) == ("succeeded", {"value": 10})
    assert (calls(str(first)), calls(str(second))) == (1, 1)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the stdio server's pid through /proc")
async def test_stdio_server_drains_on_sigterm_and_exits(tmp_path: Path, registry_file: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.touch()
    second.touch()
    db = tmp_path / "podium.db"
    params = StdioServerParameters(
        command=PODIUM, args=serve_args(tmp_path, registry_file), env={**server_env(), **LONG_LEASE}, cwd=REPO
    )
    async with Client(params) as client:
        started = await client.call_tool("run_chain", {"steps": _steps(first, second), "options": {"wait_s": 0.1}})
        assert started.structured_content is not None
        run_id = started.structured_content["run_id"]
        await _in_flight(first)
        pid = _stdio_server_pid(db)
        os.kill(pid, signal.SIGTERM)
        with anyio.fail_after(20):  # it exits although the client keeps its stdin open
            while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
                await anyio.sleep(0.05)

    await _stopped_cleanly(db, run_id)
    done = await _resumed_at_once(tmp_path, registry_file, run_id)
    assert (done["status"], done["output"]) == ("succeeded", {"value": 10})
    assert (calls(str(first)), calls(str(second))) == (1, 1)


def _state(pid: int) -> str:
    """The process state letter from /proc (Z: exited, not yet reaped by the client)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() or ["?"])[0]
    except OSError:
        return "Z"
