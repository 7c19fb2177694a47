"""A run outlives the process that started it: kill -9 the server mid-chain, and a restarted one finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import calls
from tests.server.test_transports import PODIUM, REPO, _env, _free_port, _serve_args, _wait_for_port

pytestmark = pytest.mark.anyio


async def test_a_run_killed_mid_chain_is_finished_by_the_restarted_server(tmp_path: Path, registry_file: Path) -> None:
    first, slow, last = (tmp_path / f"{name}.txt" for name in ("first", "slow", "last"))
    for path in (first, slow, last):
        path.touch()
    port = _free_port()
    args = [PODIUM, *_serve_args(tmp_path, registry_file, "--http", "--port", str(port))]
    env = {**_env(), "PODIUM_LEASE_S": "1"}
    steps = [
        {"tool": "add", "input": {"a": 1, "b": 2, "counter": str(first)}},
        {"tool": "slow-once", "input": {"seconds": 60, "value": {"$": "prev.sum"}, "counter": str(slow)}},
        {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": str(last)}},
    ]

    server = await anyio.open_process(args, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await _wait_for_port(port, server)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            started = await client.call_tool("run_chain", {"steps": steps, "options": {"wait_s": 0.2}})
        assert started.structured_content is not None
        run_id = started.structured_content["run_id"]
        with anyio.fail_after(20):
            while calls(str(slow)) < 1:  # the slow step is in flight
                await anyio.sleep(0.05)
    finally:
        os.kill(server.pid, signal.SIGKILL)  # no shutdown, no lease release: a crash
        await server.wait()

    server = await anyio.open_process(args, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await _wait_for_port(port, server)
        with anyio.fail_after(30):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                done = await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 20})
    finally:
        server.terminate()
        await server.wait()
    assert done.structured_content is not None
    assert done.structured_content["status"] == "succeeded", done.structured_content
    assert done.structured_content["output"] == {"value": 6}
    assert (calls(str(first)), calls(str(slow)), calls(str(last))) == (1, 2, 1)  # only the interrupted step re-ran
