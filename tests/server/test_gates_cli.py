"""Gates decided from the installed `podium` command, by racing processes, and across a server restart."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from patterns import Engine, RunOptions
from registry import Registry
from storage import Store
from tests.helpers import PODIUM, REPO, free_port, podium, serve_args, server_env, wait_for_port

SCHEMA = {"type": "object", "properties": {"sum": {"type": "number", "maximum": 100}}}
GATE = {"gate": {"title": "Approve the posting", "brief": "1,265 EUR to ACME", "approvers": ["ana", "ben"],
                 "payload_schema": SCHEMA}}  # fmt: skip


async def park(db: str, registry_file: Path) -> tuple[str, str]:
    """A run of [add, gate, double] parked on its gate, left in the database (no engine keeps running)."""
    async with Store.open(db) as store:
        registry = Registry(store)
        await registry.register_file(registry_file)
        async with Engine(store, registry) as engine:
            tree = {"chain": [{"tool": "add"}, GATE, {"tool": "double", "input": {"value": {"$": "prev.payload.sum"}}}]}
            run = await engine.start(tree, {"a": 1, "b": 2}, RunOptions(principal="model"))
            with anyio.fail_after(10):
                while (await engine.get(run.id)).status != "waiting":
                    await anyio.sleep(0.02)
            [gate] = await store.gates.find("pending", run.id)
    return run.id, gate.id


async def resume_all(db: str, registry_file: Path, run_id: str) -> dict[str, Any]:
    """Start an engine as a server would: its scheduler picks up decided gates and finishes their runs."""
    async with Store.open(db) as store, Engine(store, Registry(store)) as engine:
        with anyio.fail_after(10):
            while (record := await engine.get(run_id)).status in ("waiting", "running"):
                await anyio.sleep(0.05)
    return {"status": record.status, "output": record.output, "error": record.error}


@pytest.fixture
def parked(tmp_path: Path, registry_file: Path) -> tuple[str, str, str]:
    db = str(tmp_path / "podium.db")
    run_id, gate_id = anyio.run(park, db, registry_file)
    return db, run_id, gate_id


def test_gates_list_and_show_tell_an_approver_what_to_decide(parked: tuple[str, str, str]) -> None:
    db, run_id, gate_id = parked
    table = podium("gates", "list", "--db", db)
    assert table.returncode == 0
    header, _rule, row = table.stdout.splitlines()[:3]
    assert header.split()[:3] == ["GATE", "STATUS", "TITLE"]
    assert gate_id in row and "ana, ben" in row and "23h 59m" in row  # time left on the default 24 h SLA
    listed = json.loads(podium("gates", "list", "--db", db, "--json").stdout)["gates"]
    assert [g["gate_id"] for g in listed] == [gate_id]
    shown = podium("gates", "show", gate_id, "--db", db)
    assert "1,265 EUR to ACME" in shown.stdout and '"sum": 3' in shown.stdout and "opened" in shown.stdout


def test_approve_from_the_cli_and_the_run_goes_on(parked: tuple[str, str, str], registry_file: Path) -> None:
    db, run_id, gate_id = parked
    approved = podium("gates", "approve", gate_id, "--as", "ana", "--comment", "ok", "--db", db)
    assert approved.returncode == 0, approved.stderr
    assert f"gate {gate_id}: approve by ana" in approved.stdout
    outcome = anyio.run(resume_all, db, registry_file, run_id)
    assert outcome["status"] == "succeeded" and outcome["output"] == {"value": 6}


def test_approve_with_a_payload_modifies_it_and_a_bad_payload_changes_nothing(
    parked: tuple[str, str, str], registry_file: Path
) -> None:
    db, run_id, gate_id = parked
    bad = podium("gates", "approve", gate_id, "--as", "ana", "--payload", '{"sum": 1000}', "--db", db)
    assert bad.returncode == 2 and "maximum of 100" in bad.stderr
    not_json = podium("gates", "approve", gate_id, "--as", "ana", "--payload", "{sum", "--db", db)
    assert not_json.returncode == 2 and "--payload is not valid JSON" in not_json.stderr
    assert json.loads(podium("gates", "show", gate_id, "--db", db, "--json").stdout)["status"] == "pending"
    assert podium("gates", "approve", gate_id, "--as", "ana", "--payload", '{"sum": 10}', "--db", db).returncode == 0
    outcome = anyio.run(resume_all, db, registry_file, run_id)
    assert outcome["output"] == {"value": 20}


def test_reject_from_the_cli_ends_the_run_rejected(parked: tuple[str, str, str], registry_file: Path) -> None:
    db, run_id, gate_id = parked
    assert podium("gates", "reject", gate_id, "--as", "ben", "--comment", "duplicate", "--db", db).returncode == 0
    outcome = anyio.run(resume_all, db, registry_file, run_id)
    assert outcome["status"] == "rejected" and "duplicate" in outcome["error"]["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gates", "approve", "nope", "--as", "ana"], "no gate with id 'nope'"),
        (["gates", "approve", "{gate}", "--as", "zed"], "'zed' is not an approver of gate"),
        (["gates", "approve", "{gate}", "--as", "model"], "'model' opened gate"),
    ],
)
def test_bad_decisions_from_the_cli_exit_2_with_the_reason(
    parked: tuple[str, str, str], args: list[str], message: str
) -> None:
    db, _run_id, gate_id = parked
    done = podium(*[a.replace("{gate}", gate_id) for a in args], "--db", db)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_two_cli_processes_deciding_at_once_record_one_decision(parked: tuple[str, str, str]) -> None:
    db, _run_id, gate_id = parked
    processes = [
        subprocess.Popen(
            [PODIUM, "gates", verb, gate_id, "--as", name, "--db", db],
            env=server_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for verb, name in (("approve", "ana"), ("reject", "ben"), ("approve", "ben"), ("reject", "ana"))
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    results = [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs, strict=True)]
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1 and len(losers) == 3
    gate = json.loads(podium("gates", "show", gate_id, "--db", db, "--json").stdout)
    for _code, _out, err in losers:
        assert f"already decided ({gate['decision']}) by {gate['decided_by']} at " in err
    assert [e["event"] for e in gate["history"]].count("decided") == 1


@pytest.mark.anyio
async def test_a_gate_pending_across_a_server_restart_is_decided_after_it(tmp_path: Path, registry_file: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port))]
    db = str(tmp_path / "podium.db")

    server = await anyio.open_process(args, env=server_env(), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        async with Client(url) as client:
            opened = await client.call_tool(
                "await_approval", {"title": "Ship it?", "brief": "v2 release", "approvers": ["ana"],
                                   "payload": {"version": 2}, "options": {"wait_s": 1}})  # fmt: skip
    finally:
        server.terminate()
        await server.wait()
    assert opened.structured_content is not None
    run_id, gate = opened.structured_content["run_id"], opened.structured_content["gate"]
    assert opened.structured_content["status"] == "waiting"

    decided = await anyio.to_thread.run_sync(lambda: podium("gates", "approve", gate["gate_id"], "--as", "ana",
                                                            "--db", db))  # fmt: skip
    assert decided.returncode == 0, decided.stderr

    server = await anyio.open_process(args, env=server_env(), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, server)
        with anyio.fail_after(30):
            async with Client(url) as client:
                done = await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 20})
    finally:
        server.terminate()
        await server.wait()
    assert done.structured_content is not None
    assert done.structured_content["status"] == "succeeded"
    assert done.structured_content["output"]["payload"] == {"version": 2}
