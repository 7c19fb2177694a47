"""Gate rows on SQLite and PostgreSQL: compare-and-set transitions under concurrency."""

from __future__ import annotations

import anyio
import pytest

from storage import GATE_DECIDED, GATE_EXPIRED, GATE_PENDING, NewGate, Store
from tests.storage.test_store import new_run

pytestmark = pytest.mark.anyio


def new_gate(gate_id: str, run_id: str = "run-1", path: str = "1") -> NewGate:
    return NewGate(
        id=gate_id, run_id=run_id, path=path, title="Approve", brief="b", payload={"x": 1}, payload_schema=None,
        approvers=["ana"], escalate_to=["lead"], sla_s=60.0, on_timeout="reject", opened_by="model",
    )  # fmt: skip


async def test_a_gate_opens_once_per_run_and_path(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1"))
        first, created = await store.gates.create(new_gate("g1"))
        again, created_again = await store.gates.create(new_gate("g2"))
    assert created and not created_again and again.id == first.id == "g1"
    assert first.status == GATE_PENDING and first.history[0]["event"] == "opened"


async def test_of_many_concurrent_decisions_exactly_one_is_recorded(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1"))
        gate, _ = await store.gates.create(new_gate("g1"))
        won: list[str] = []

        async def one(name: str) -> None:
            if await store.gates.decide(gate, "approve", name, None, None, "hash"):
                won.append(name)

        async with anyio.create_task_group() as tg:
            for name in ("ana", "ben", "cy", "dee", "eve"):
                tg.start_soon(one, name)
        settled = await store.gates.get("g1")
    assert len(won) == 1 and settled.decided_by == won[0] and settled.status == GATE_DECIDED
    assert [e["event"] for e in settled.history] == ["opened", "decided"]


async def test_escalation_and_reminders_happen_once_per_level(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1"))
        gate, _ = await store.gates.create(new_gate("g1"))
        reminded = [await store.gates.remind(gate), await store.gates.remind(gate)]
        escalated = [await store.gates.escalate(gate), await store.gates.escalate(gate)]
        final = await store.gates.get("g1")
    assert reminded[0] is not None and reminded[1] is None
    assert escalated[0] is not None and escalated[1] is None
    assert final.level == 1 and final.current_approvers == ["lead"] and final.allowed_deciders == ["ana", "lead"]


async def test_expiring_a_runs_gates_and_finding_answered_waiting_runs(db_url: str) -> None:
    async with Store.open(db_url) as store:
        for run_id in ("run-1", "run-2"):
            await store.create_run(new_run(run_id, status="waiting"))
        g1, _ = await store.gates.create(new_gate("g1", "run-1"))
        g2, _ = await store.gates.create(new_gate("g2", "run-2"))
        await store.gates.decide(g2, "approve", "ana", None, None, "hash")
        assert await store.gates.waiting_runs_with_answers() == ["run-2"]
        await store.gates.consume("g2")
        assert await store.gates.waiting_runs_with_answers() == []
        assert await store.gates.expire("run-1", "cancelled") == 1
        assert (await store.gates.get("g1")).status == GATE_EXPIRED
        assert await store.leases.claim_waiting("run-2") is True
        assert await store.leases.claim_waiting("run-2") is False
