"""Two `podium serve --http` replicas on one PostgreSQL database, in real processes.

A replica killed with -9 mid-run leaves a lease that stops being renewed; the other replica claims the run once it
expires and finishes it from its step records. The same idempotency key sent to both replicas at once starts one run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest
from mcp import Client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.conftest import calls
from tests.helpers import PODIUM, REPO, free_port, server_env, wait_for_port, with_payment_tool

pytestmark = pytest.mark.anyio
LEASE_S = 2


@dataclass
class Replica:
    process: anyio.abc.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def output(self) -> str:
        """What the replica wrote to stdout and stderr (for failure messages)."""
        return self.log.read_text(errors="replace")


async def _start(tmp_path: Path, name: str, db_url: str, registry_file: Path) -> Replica:
    port = free_port()
    args = [PODIUM, "serve", "--db", db_url, "--registry", str(registry_file), "--http", "--port", str(port)]
    log = tmp_path / f"replica-{name}.log"
    with log.open("wb") as sink:  # the child keeps its own descriptor
        process = await anyio.open_process(
            args,
            env={**server_env(), "PODIUM_LEASE_S": str(LEASE_S)},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    replica = Replica(process, port, log)
    try:
        await wait_for_port(port, process)
    except BaseException:
        await _stop(replica)
        raise
    return replica


async def _stop(replica: Replica) -> None:
    """Terminate a replica still running (kill it if it does not stop), even from a cancelled scope."""
    with anyio.CancelScope(shield=True):
        if replica.process.returncode is None:
            replica.process.terminate()
            with anyio.move_on_after(15):
                await replica.process.wait()
        if replica.process.returncode is None:
            replica.process.kill()
            await replica.process.wait()


@asynccontextmanager
async def _replicas(tmp_path: Path, db_url: str, registry_file: Path) -> AsyncIterator[tuple[Replica, Replica]]:
    """Replicas A and B on ``db_url``: A is up (schema migrated, tools registered) before B starts."""
    a = await _start(tmp_path, "a", db_url, registry_file)
    try:
        b = await _start(tmp_path, "b", db_url, registry_file)
        try:
            yield a, b
        finally:
            await _stop(b)
    finally:
        await _stop(a)


async def _query(db_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of one statement, read straight from the database the replicas share."""
    engine = create_async_engine(db_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()


async def _run_row(db_url: str, run_id: str) -> dict[str, Any]:
    rows = await _query(
        db_url, "SELECT status, lease_owner, lease_expires_at, finished_at FROM runs WHERE id = :id", id=run_id
    )
    assert len(rows) == 1, rows
    return rows[0]


def _owner_pid(lease_owner: str | None) -> int:
    """The pid in a lease owner, which reads ``host:pid:random``."""
    assert lease_owner is not None
    _host, pid, _random = lease_owner.rsplit(":", 2)
    return int(pid)


async def test_a_replica_killed_mid_run_leaves_it_to_the_other_replica(
    tmp_path: Path, registry_file: Path, postgres_url: str
) -> None:
    """kill -9 the replica executing a chain: the other claims the expired lease and re-runs only the cut step."""
    first, slow, last = (tmp_path / f"{name}.txt" for name in ("first", "slow", "last"))
    for path in (first, slow, last):
        path.touch()
    steps = [
        {"tool": "add", "input": {"a": 1, "b": 2, "counter": str(first)}},
        {"tool": "slow-once", "input": {"seconds": 60, "value": {"$": "prev.sum"}, "counter": str(slow)}},
        {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": str(last)}},
    ]
    async with _replicas(tmp_path, postgres_url, registry_file) as (a, b):
        with anyio.fail_after(30):
            async with Client(a.url) as client:
                started = await client.call_tool("run_chain", {"steps": steps, "options": {"wait_s": 0.2}})
            assert started.structured_content is not None, started.content
            run_id = started.structured_content["run_id"]
            while calls(str(slow)) < 1:  # the slow step is in flight on A
                await anyio.sleep(0.05)
        before = await _run_row(postgres_url, run_id)
        assert before["status"] == "running"
        assert _owner_pid(before["lease_owner"]) == a.process.pid, (before, a.process.pid, b.process.pid)

        os.kill(a.process.pid, signal.SIGKILL)  # no shutdown, no lease release: a crash
        killed_at = time.time()
        with anyio.fail_after(10):
            await a.process.wait()

        with anyio.fail_after(LEASE_S + 30):
            async with Client(b.url) as client:
                done = await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": LEASE_S + 20})
        after = await _run_row(postgres_url, run_id)
        replica_b_output = b.output()

    assert done.structured_content is not None, done.content
    assert done.structured_content["status"] == "succeeded", (done.structured_content, replica_b_output)
    assert done.structured_content["output"] == {"value": 6}
    assert after["status"] == "succeeded"
    assert _owner_pid(after["lease_owner"]) == b.process.pid, (after, b.process.pid)
    assert (calls(str(first)), calls(str(slow)), calls(str(last))) == (1, 2, 1)  # only the interrupted step re-ran
    # A's lease ran out at most LEASE_S after the kill and B looks for expired leases every LEASE_S / 2: the margin
    # covers a loaded machine, not a slower claim loop.
    assert after["finished_at"] is not None
    assert after["finished_at"] - killed_at < LEASE_S + 8, (after["finished_at"] - killed_at, replica_b_output)


async def _run_chain(client: Client, arguments: dict[str, Any], answers: dict[str, dict[str, Any]], name: str) -> None:
    result = await client.call_tool("run_chain", arguments)
    assert not result.is_error and result.structured_content is not None, result.content
    answers[name] = result.structured_content


async def test_one_idempotency_key_sent_to_both_replicas_at_once_starts_one_run(
    tmp_path: Path, registry_file: Path, postgres_url: str
) -> None:
    """Both replicas answer with the same run, the database holds one run per key, and its tool ran once."""
    rounds = 10
    keys = [f"replicas-{n}-{uuid.uuid4().hex[:8]}" for n in range(rounds)]
    counters = [tmp_path / f"add-{n}.txt" for n in range(rounds)]
    for counter in counters:
        counter.touch()
    answers: list[dict[str, dict[str, Any]]] = []
    async with _replicas(tmp_path, postgres_url, registry_file) as (a, b):
        with anyio.fail_after(120):
            async with Client(a.url) as client_a, Client(b.url) as client_b:
                for n, (key, counter) in enumerate(zip(keys, counters, strict=True)):
                    arguments = {
                        "steps": [{"tool": "add", "input": {"a": n, "b": 1, "counter": str(counter)}}],
                        "options": {"wait_s": 10, "idempotency_key": key},
                    }
                    answer: dict[str, dict[str, Any]] = {}
                    async with anyio.create_task_group() as group:  # both calls in flight at once
                        group.start_soon(_run_chain, client_a, arguments, answer, "a")
                        group.start_soon(_run_chain, client_b, arguments, answer, "b")
                    answers.append(answer)
        runs = await _query(postgres_url, "SELECT idempotency_key, status FROM runs")

    for n, answer in enumerate(answers):
        assert answer["a"]["run_id"] == answer["b"]["run_id"], (n, answer)
        for name in ("a", "b"):
            assert answer[name]["status"] == "succeeded", (n, name, answer[name])
            assert answer[name]["output"] == {"sum": n + 1}
    assert sorted(run["idempotency_key"] for run in runs) == sorted(keys)  # exactly one run per key
    assert all(run["status"] == "succeeded" for run in runs), runs
    assert [calls(str(counter)) for counter in counters] == [1] * rounds  # no run executed on both replicas


async def test_a_stalled_replica_that_lost_its_run_never_makes_its_payment(
    tmp_path: Path, registry_file: Path, postgres_url: str
) -> None:
    """SIGSTOP the replica running a chain for longer than its lease: the other takes the run over and pays once; the
    stalled one, resumed, finds its lease gone before its non-idempotent call and stops without recording anything."""
    with_payment_tool(registry_file)
    slow, pay = tmp_path / "slow.txt", tmp_path / "pay.txt"
    slow.touch()
    pay.touch()
    steps = [
        {"tool": "add", "input": {"a": 1, "b": 2}},
        {"tool": "sleepy", "input": {"seconds": 3, "value": {"$": "prev.sum"}, "counter": str(slow)}},
        {"tool": "pay@2.0.0", "input": {"seconds": 0, "value": {"$": "prev.value"}, "counter": str(pay)}},
    ]
    async with _replicas(tmp_path, postgres_url, registry_file) as (a, b):
        async with Client(a.url) as client:
            started = await client.call_tool("run_chain", {"steps": steps, "options": {"wait_s": 0.2}})
        assert started.structured_content is not None, started.content
        run_id = started.structured_content["run_id"]
        with anyio.fail_after(20):
            while calls(str(slow)) < 1:
                await anyio.sleep(0.05)
        os.kill(a.process.pid, signal.SIGSTOP)  # a long GC pause, a frozen VM: A holds the run but does nothing
        try:
            with anyio.fail_after(LEASE_S + 30):
                async with Client(b.url) as client:
                    done = await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": LEASE_S + 20})
        finally:
            os.kill(a.process.pid, signal.SIGCONT)
        assert done.structured_content is not None, done.content
        assert done.structured_content["status"] == "succeeded", (done.structured_content, a.output(), b.output())
        with anyio.fail_after(60):  # A's sleepy step ends now; it must find its lease gone, not go on to pay
            while "another engine took over its lease" not in a.output():
                await anyio.sleep(0.1)
        after = await _run_row(postgres_url, run_id)
        replica_a_output = a.output()

    assert done.structured_content is not None, done.content
    assert (done.structured_content["status"], done.structured_content["output"]) == (
        "succeeded",
        {"value": 3, "calls": 1},
    )
    assert calls(str(pay)) == 1, replica_a_output
    assert (after["status"], _owner_pid(after["lease_owner"])) == ("succeeded", b.process.pid)
    assert "another engine took over its lease" in replica_a_output


async def test_two_replicas_receiving_events_for_one_key_at_once_fire_one_run(
    tmp_path: Path, postgres_url: str
) -> None:
    """50 rounds: each sends two events for one new key, one to each replica's POST /events at the same time;
    exactly one of them fires, the other is suppressed by the cooldown, and the database holds one run per key. In
    every other round the two are one event delivered twice at once (a sender's retry racing its first try): then
    the other is a duplicate."""
    registry = tmp_path / "events.json"
    registry.write_text(
        json.dumps(
            {
                "tool": [
                    {"name": "noop", "version": "1.0.0", "provider": {"type": "python", "target": "tests.tools:noop"}}
                ],
                "workflow": [{"name": "on-renewal", "version": "1.0.0", "step": {"tool": "noop"}}],
                "trigger": [{"name": "renewals", "on": "contract.renewal_due", "workflow": "on-renewal"}],
            }
        )
    )
    rounds = 50
    answers: list[dict[str, dict[str, Any]]] = []
    async with _replicas(tmp_path, postgres_url, registry) as (a, b):
        base = {name: replica.url.removesuffix("/mcp") for name, replica in (("a", a), ("b", b))}
        with anyio.fail_after(120):
            async with httpx2.AsyncClient() as http:

                async def send(name: str, key: str, answer: dict[str, dict[str, Any]], same: bool) -> None:
                    event = {"type": "contract.renewal_due", "key": key, "event_id": key if same else f"{key}-{name}"}
                    response = await http.post(f"{base[name]}/events", json=event)
                    assert response.status_code == 200, response.text
                    answer[name] = response.json()

                for n in range(rounds):
                    key = f"C-{n}-{uuid.uuid4().hex[:6]}"
                    answer: dict[str, dict[str, Any]] = {}
                    async with anyio.create_task_group() as group:  # both deliveries in flight at once
                        group.start_soon(send, "a", key, answer, n % 2 == 1)
                        group.start_soon(send, "b", key, answer, n % 2 == 1)
                    answers.append(answer)
        runs = await _query(postgres_url, "SELECT idempotency_key FROM runs")

    for n, answer in enumerate(answers):
        fired = [f for name in ("a", "b") for f in answer[name]["fired"]]
        suppressed = [s["reason"] for name in ("a", "b") for s in answer[name]["suppressed"]]
        assert len(fired) == 1 and suppressed == ["duplicate" if n % 2 else "cooldown"], (n, answer)
    assert len(runs) == rounds and all(r["idempotency_key"].startswith("event:") for r in runs)
