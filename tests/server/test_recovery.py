"""A run outlives the process that started it: kill -9 the server mid-chain, and a restarted one finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import calls
from tests.helpers import (
    PODIUM,
    REPO,
    free_port,
    podium,
    serve_args,
    server_env,
    wait_for_port,
    with_payment_tool,
)

pytestmark = pytest.mark.anyio


async def test_a_run_killed_mid_chain_is_finished_by_the_restarted_server(tmp_path: Path, registry_file: Path) -> None:
    first, slow, last = (tmp_path / f"{name}.txt" for name in ("first", "slow", "last"))
    for path in (first, slow, last):
        path.touch()
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port))]
    env = {**server_env(), "PODIUM_LEASE_S": "1"}
    steps = [
        {"tool": "add", "input": {"a": 1, "b": 2, "counter": str(first)}},
        {"tool": "slow-once", "input": {"seconds": 60, "value": {"$": "prev.sum"}, "counter": str(slow)}},
        {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": str(last)}},
    ]

    server = await anyio.open_process(args, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
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
        await wait_for_port(port, server)
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


async def test_a_payment_in_flight_at_a_crash_needs_attention_and_the_cli_retries_or_skips_it(
    tmp_path: Path, registry_file: Path
) -> None:
    with_payment_tool(registry_file)
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port))]
    env = {**server_env(), "PODIUM_LEASE_S": "1"}
    counters = {name: tmp_path / f"{name}.txt" for name in ("a-pay", "a-after", "b-pay", "b-after")}
    for path in counters.values():
        path.touch()

    def chain(run: str) -> list[dict[str, Any]]:
        pay, after = str(counters[f"{run}-pay"]), str(counters[f"{run}-after"])
        return [
            {"tool": "add", "input": {"a": 1, "b": 2}},
            {"tool": "pay@2.0.0", "input": {"seconds": 60, "value": {"$": "prev.sum"}, "counter": pay}},
            {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": after}},
        ]

    server = await anyio.open_process(args, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            ids = {}
            for run in ("a", "b"):
                started = await client.call_tool("run_chain", {"steps": chain(run), "options": {"wait_s": 0.1}})
                assert started.structured_content is not None
                ids[run] = started.structured_content["run_id"]
        with anyio.fail_after(20):
            while calls(str(counters["a-pay"])) < 1 or calls(str(counters["b-pay"])) < 1:  # both payments in flight
                await anyio.sleep(0.05)
    finally:
        os.kill(server.pid, signal.SIGKILL)
        await server.wait()

    server = await anyio.open_process(args, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            for run in ("a", "b"):
                with anyio.fail_after(30):
                    waited = await client.call_tool("wait_run", {"run_id": ids[run], "timeout_s": 20})
                assert waited.structured_content is not None
                assert waited.structured_content["status"] == "needs_attention", waited.structured_content
                assert waited.structured_content["error"]["step"] == "1"
                assert f"podium runs retry {ids[run]} --step 1" in waited.structured_content["next_action"]
        # the payment is never made again on its own: an operator decides
        assert calls(str(counters["a-pay"])) == calls(str(counters["b-pay"])) == 1

        # a: it did not go out; retry it while the server runs (whichever of the CLI or the server claims it)
        db = str(tmp_path / "podium.db")
        retried = await _podium("runs", "retry", ids["a"], "--step", "1", "--as", "ops-alice", "--db", db, "--json")
        assert retried.returncode == 0, retried.stderr
        result = json.loads(retried.stdout)
        assert (result["status"], result["output"]) == ("succeeded", {"value": 6})
        assert [(e["action"], e["by"], e["steps"]) for e in result["history"]] == [("retry", "ops-alice", ["1"])]
        assert (calls(str(counters["a-pay"])), calls(str(counters["a-after"]))) == (2, 1)
    finally:
        server.terminate()
        await server.wait()

    # b: it went out (the ledger shows 3); record that, with the server down: the CLI finishes the run itself
    skipped = await _podium(
        "runs", "skip", ids["b"], "--step", "1", "--output", '{"value": 3, "calls": 1}', "--as", "ops-bob",
        "--reason", "ledger shows the payment", "--db", str(tmp_path / "podium.db"),
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped 1 (ops-bob)" in skipped.stdout
    assert f"run {ids['b']}: succeeded" in skipped.stdout
    assert "skip by ops-bob: 1 with output" in skipped.stdout and "(ledger shows the payment)" in skipped.stdout
    assert any(line.endswith("pay@2.0.0  completed  (skipped by ops-bob)") for line in skipped.stdout.splitlines())
    assert (calls(str(counters["b-pay"])), calls(str(counters["b-after"]))) == (1, 1)
    shown = await _podium("runs", "show", ids["b"], "--json", "--db", str(tmp_path / "podium.db"))
    assert json.loads(shown.stdout)["output"] == {"value": 6}


async def _podium(*args: str) -> subprocess.CompletedProcess[str]:
    return await anyio.to_thread.run_sync(lambda: podium(*args))


async def test_a_parent_killed_while_its_child_runs_reattaches_to_that_child_after_restart(
    tmp_path: Path, registry_file: Path
) -> None:
    import sqlite3

    slow = tmp_path / "slow.txt"
    slow.touch()
    workflows = tmp_path / "workflows.json"
    child_step = {"tool": "slow-once", "input": {"seconds": 60, "value": {"$": "input.value"}, "counter": str(slow)}}
    workflows.write_text(json.dumps({"workflow": [{"name": "slow-child", "version": "1.0.0", "step": child_step}]}))
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port), "--registry", str(workflows))]
    env = {**server_env(), "PODIUM_LEASE_S": "1"}
    steps = [
        {"workflow": "slow-child", "input": {"value": 3}},
        {"tool": "double", "input": {"value": {"$": "prev.value"}}},
    ]

    def children(parent: str) -> list[str]:
        with sqlite3.connect(tmp_path / "podium.db") as conn:
            return [r[0] for r in conn.execute("SELECT id FROM runs WHERE parent_run_id = ?", (parent,))]

    server = await anyio.open_process(args, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            started = await client.call_tool("run_chain", {"steps": steps, "options": {"wait_s": 0.2}})
        assert started.structured_content is not None, started.content
        run_id = started.structured_content["run_id"]
        with anyio.fail_after(20):
            while calls(str(slow)) < 1:  # the child's slow step is in flight
                await anyio.sleep(0.05)
    finally:
        os.kill(server.pid, signal.SIGKILL)  # parent and child both interrupted, leases held
        await server.wait()
    [child] = children(run_id)

    server = await anyio.open_process(args, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        with anyio.fail_after(30):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                done = await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 20})
                finished_child = await client.call_tool("get_run", {"run_id": child})
    finally:
        server.terminate()
        await server.wait()
    assert done.structured_content is not None and finished_child.structured_content is not None
    assert done.structured_content["status"] == "succeeded", done.structured_content
    assert done.structured_content["output"] == {"value": 6}
    assert finished_child.structured_content["status"] == "succeeded"
    assert children(run_id) == [child]  # re-attached: one child, not two
    assert calls(str(slow)) == 2  # the child's interrupted step ran again, once
