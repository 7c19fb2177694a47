"""Approval gates through the engine: decisions, SLAs and escalation, exactly-one decision, cancellation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from patterns import Engine, Limits, RunOptions
from patterns.errors import ContractViolation, GateError
from patterns.events import RunEvent
from patterns.gates import decide
from registry import Registry
from storage import RunRecord, Store
from tests.conftest import MovableClock
from tests.helpers import until

pytestmark = pytest.mark.anyio

GATE: dict[str, Any] = {
    "gate": {"title": "Approve the posting", "brief": "Total 1,265 EUR to ACME", "approvers": ["ana"]}
}


def chain_with_gate(gate: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "chain": [{"tool": "add", "id": "sum"}, gate or GATE, {"tool": "echo", "input": {"approved": {"$": "prev"}}}]
    }


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def open_gate(engine: Engine, store: Store, tree: dict[str, Any]) -> tuple[RunRecord, Any]:
    run = await engine.start(tree, {"a": 1, "b": 2}, RunOptions(principal="model"))
    parked = await until(engine, run.id, "waiting")
    [gate] = await store.gates.find("pending", run.id)
    return parked, gate


async def test_a_gate_parks_the_run_without_holding_a_task(engine: Engine, store: Store) -> None:
    run, gate = await open_gate(engine, store, chain_with_gate())
    assert run.status == "waiting"
    assert not engine.is_active(run.id)  # waiting costs no task: it can wait for days
    assert gate.title == "Approve the posting" and gate.approvers == ["ana"] and gate.payload == {"sum": 3}
    assert gate.sla_at > gate.created_at
    steps = {s.path: s.status for s in await engine.steps(run.id)}
    assert steps["0"] == "completed" and steps["1"] == "waiting" and "2" not in steps


async def test_approve_resumes_the_run_and_the_gate_output_flows_on(engine: Engine, store: Store, counter: str) -> None:
    run, gate = await open_gate(engine, store, chain_with_gate())
    decided = await decide(store, gate.id, "approve", "ana", "looks right")
    assert decided.decision == "approve" and decided.decided_by == "ana" and decided.payload_hash
    done = await until(engine, run.id, "succeeded", "failed")
    assert done.output == {
        "approved": {"gate_id": gate.id, "decision": "approve", "payload": {"sum": 3}, "decided_by": "ana",
                     "comment": "looks right"}
    }  # fmt: skip


async def test_modify_sends_the_edited_payload_on_and_is_checked_against_the_schema(engine: Engine, store: Store):
    schema = {"type": "object", "required": ["sum"], "properties": {"sum": {"type": "number", "maximum": 10}}}
    tree = chain_with_gate({"gate": {**GATE["gate"], "payload_schema": schema}})
    run, gate = await open_gate(engine, store, tree)
    with pytest.raises(ContractViolation, match=r"field sum: 99 is greater than the maximum of 10 \(rule: maximum\)"):
        await decide(store, gate.id, "modify", "ana", payload={"sum": 99})
    assert (await store.gates.get(gate.id)).status == "pending"  # nothing changed
    await decide(store, gate.id, "modify", "ana", payload={"sum": 4})
    done = await until(engine, run.id, "succeeded", "failed")
    assert done.output["approved"]["payload"] == {"sum": 4}
    assert done.output["approved"]["decision"] == "modify"


async def test_reject_ends_the_run_rejected_and_no_later_step_runs(engine: Engine, store: Store) -> None:
    run, gate = await open_gate(engine, store, chain_with_gate())
    await decide(store, gate.id, "reject", "ana", "wrong vendor")
    done = await until(engine, run.id, "rejected", "failed", "succeeded")
    assert done.status == "rejected"
    assert done.error is not None and done.error["type"] == "gate_rejected"
    assert "rejected by ana: wrong vendor" in done.error["message"]
    assert "2" not in {s.path for s in await engine.steps(run.id)}


@pytest.mark.parametrize(
    ("decision", "by", "kwargs", "message"),
    [
        ("approve", "model", {}, "'model' opened gate .* and cannot decide it"),
        ("approve", "bob", {}, "'bob' is not an approver of gate .*; approvers: ana"),
        ("maybe", "ana", {}, "decision must be one of approve, reject, modify"),
        ("modify", "ana", {}, "a 'modify' decision needs the edited payload"),
        ("reject", "ana", {"payload": {"x": 1}}, "a 'reject' decision takes no payload"),
    ],
)
async def test_bad_decisions_are_specific_errors_and_change_nothing(
    engine: Engine, store: Store, decision: str, by: str, kwargs: dict[str, Any], message: str
) -> None:
    run, gate = await open_gate(engine, store, chain_with_gate())
    with pytest.raises(GateError, match=message):
        await decide(store, gate.id, decision, by, **kwargs)
    after = await store.gates.get(gate.id)
    assert after.status == "pending" and after.history == gate.history
    assert (await engine.get(run.id)).status == "waiting"


async def test_an_unknown_gate_id_is_a_specific_error(engine: Engine, store: Store) -> None:
    from storage import GateNotFound

    with pytest.raises(GateNotFound, match="no gate with id 'nope'"):
        await decide(store, "nope", "approve", "ana")


async def test_two_approvers_deciding_at_once_record_one_decision(engine: Engine, store: Store) -> None:
    run, gate = await open_gate(engine, store, chain_with_gate({"gate": {**GATE["gate"], "approvers": []}}))
    outcomes: list[str] = []

    async def one(name: str) -> None:
        try:
            await decide(store, gate.id, "approve", name)
            outcomes.append(f"won:{name}")
        except GateError as exc:
            outcomes.append(str(exc))

    async with anyio.create_task_group() as tg:
        for name in ("ana", "ben", "cy", "dee"):
            tg.start_soon(one, name)
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1
    winner = winners[0].removeprefix("won:")
    assert all(f"already decided (approve) by {winner} at " in o for o in outcomes if not o.startswith("won:"))
    assert [e["event"] for e in (await store.gates.get(gate.id)).history].count("decided") == 1


async def test_an_expired_sla_escalates_then_on_timeout_applies(engine: Engine, store: Store) -> None:
    tree = chain_with_gate(
        {"gate": {**GATE["gate"], "sla_s": 0.3, "escalate_to": ["lead", "director"], "on_timeout": "approve"}}
    )
    run, gate = await open_gate(engine, store, tree)
    done = await until(engine, run.id, "succeeded", "failed", "rejected")
    assert done.status == "succeeded"
    settled = await store.gates.get(gate.id)
    events = [(e["event"], e.get("to")) for e in settled.history]
    assert events == [
        ("opened", ["ana"]),
        ("reminder", ["ana"]),
        ("escalated", "lead"),
        ("reminder", ["lead"]),
        ("escalated", "director"),
        ("reminder", ["director"]),
        ("decided", None),
    ]
    assert settled.decided_by == "system:sla" and settled.decision == "approve"
    assert done.output["approved"]["decided_by"] == "system:sla"


async def test_an_escalated_gate_can_be_decided_by_the_escalation_target(engine: Engine, store: Store) -> None:
    tree = chain_with_gate({"gate": {**GATE["gate"], "sla_s": 0.2, "escalate_to": ["lead"], "on_timeout": "fail"}})
    run, gate = await open_gate(engine, store, tree)
    with pytest.raises(GateError, match="not an approver"):
        await decide(store, gate.id, "approve", "lead")
    with anyio.fail_after(5):
        while (await store.gates.get(gate.id)).level == 0:
            await anyio.sleep(0.02)
    await decide(store, gate.id, "approve", "lead")
    assert (await until(engine, run.id, "succeeded", "failed", "timed_out")).status == "succeeded"


async def test_on_timeout_fail_ends_the_run_timed_out(engine: Engine, store: Store) -> None:
    run, _gate = await open_gate(engine, store, chain_with_gate({"gate": {**GATE["gate"], "sla_s": 0.2,
                                                                            "on_timeout": "fail"}}))  # fmt: skip
    done = await until(engine, run.id, "timed_out", "failed", "succeeded")
    assert done.status == "timed_out" and done.error is not None and done.error["type"] == "timeout"


async def test_on_timeout_reject_ends_the_run_rejected_by_the_sla(engine: Engine, store: Store) -> None:
    run, _gate = await open_gate(engine, store, chain_with_gate({"gate": {**GATE["gate"], "sla_s": 0.2}}))
    done = await until(engine, run.id, "rejected", "failed", "succeeded")
    assert done.status == "rejected" and "rejected by system:sla" in (done.error or {}).get("message", "")


async def test_cancelling_a_waiting_run_expires_its_gate(engine: Engine, store: Store) -> None:
    run, gate = await open_gate(engine, store, chain_with_gate())
    cancelled = await engine.cancel(run.id, "no longer needed")
    assert cancelled.status == "cancelled"
    assert (await store.gates.get(gate.id)).status == "expired"
    with pytest.raises(GateError, match="expired"):
        await decide(store, gate.id, "approve", "ana")


async def test_a_gate_in_a_fan_out_branch_waits_while_the_other_branches_finish(engine: Engine, store: Store):
    tree = {"fan_out": {"branches": [{"tool": "add"}, GATE, {"tool": "add"}]}}
    run, gate = await open_gate(engine, store, tree)
    steps = {s.path: s.status for s in await engine.steps(run.id)}
    assert steps["fan_out/0"] == "completed" and steps["fan_out/2"] == "completed" and steps["fan_out/1"] == "waiting"
    await decide(store, gate.id, "approve", "ana")
    done = await until(engine, run.id, "succeeded", "failed")
    assert done.output[1]["decision"] == "approve" and done.output[0] == {"sum": 3}


async def test_a_gate_pending_across_an_engine_restart_is_decided_after_it(
    store: Store, registry: Registry, counter: str
) -> None:
    async with Engine(store, registry) as first:
        run, gate = await open_gate(first, store, chain_with_gate())
    await decide(store, gate.id, "approve", "ana")  # decided while no engine runs
    async with Engine(store, registry) as second:  # its scheduler finds the answered gate and resumes the run
        done = await until(second, run.id, "succeeded", "failed")
    assert done.output["approved"]["decision"] == "approve"


async def test_with_two_engines_on_one_database_each_sla_event_fires_once(
    store: Store, registry: Registry, tmp_path: Any
) -> None:
    tree = chain_with_gate(
        {"gate": {**GATE["gate"], "sla_s": 0.3, "escalate_to": ["lead", "director"], "on_timeout": "reject"}}
    )
    async with (
        Store.open(store.db.display) as other_store,
        Engine(store, registry) as first,
        Engine(other_store, Registry(other_store)) as second,
    ):
        run, gate = await open_gate(first, store, tree)
        done = await until(second, run.id, "rejected", "failed", "succeeded")
    assert done.status == "rejected"
    events = [e["event"] for e in (await store.gates.get(gate.id)).history]
    assert events == ["opened", "reminder", "escalated", "reminder", "escalated", "reminder", "decided"]


async def test_time_spent_waiting_for_a_person_does_not_count_against_max_run_s(
    store: Store, registry: Registry, clock: MovableClock
) -> None:
    async with Engine(store, registry, Limits(max_run_s=1.0)) as engine:
        run, gate = await open_gate(engine, store, chain_with_gate())
        clock.advance(1.3)  # longer than the run may execute: the gate's SLA governs the wait, not max_run_s
        await decide(store, gate.id, "approve", "ana")
        done = await until(engine, run.id, "succeeded", "failed", "timed_out")
    assert done.status == "succeeded", done.error
    assert done.deadline_at is not None and done.deadline_at > gate.created_at + 1.3


@pytest.mark.parametrize(
    ("decision", "by", "comment", "payload", "reason"),
    [
        pytest.param("approve", "system:sla", None, None, "reserved_name", id="reserved"),
        pytest.param("approve", "x" * 500, None, None, "invalid_argument", id="long-name"),
        pytest.param("approve", {"x": 1}, None, None, "invalid_argument", id="name-object"),
        pytest.param("approve", "ana", {"x": 1}, None, "invalid_argument", id="comment-object"),
        pytest.param("approve", "ana", "c" * 5_000, None, "invalid_argument", id="long-comment"),
        pytest.param("modify", "ana", None, {"amount": float("nan")}, "invalid_argument", id="payload-nan"),
        pytest.param("modify", "ana", None, _nested(100), "invalid_argument", id="payload-deep"),
        pytest.param("maybe", "ana", None, None, "invalid_decision", id="decision"),
        pytest.param(["approve"], "ana", None, None, "invalid_decision", id="decision-list"),
        pytest.param("modify", "ana", None, None, "invalid_decision", id="modify-without-payload"),
        pytest.param("approve", "zed", None, None, "not_an_approver", id="stranger"),
        pytest.param("approve", "model", None, None, "opener", id="opener"),
    ],
)
async def test_a_decision_that_cannot_be_taken_says_why_and_changes_nothing(
    engine: Engine, store: Store, decision: Any, by: Any, comment: Any, payload: Any, reason: str
) -> None:
    _, gate = await open_gate(engine, store, chain_with_gate())
    with pytest.raises(GateError) as raised:
        await decide(store, gate.id, decision, by, comment, payload)
    assert raised.value.reason == reason
    assert len(raised.value.message) < 500
    assert (await store.gates.get(gate.id)).status == "pending"


async def test_a_settled_gate_says_how_it_settled(engine: Engine, store: Store) -> None:
    _, gate = await open_gate(engine, store, chain_with_gate())
    await decide(store, gate.id, "approve", "ana")
    with pytest.raises(GateError) as again:
        await decide(store, gate.id, "reject", "ana")
    assert again.value.reason == "already_decided"


async def test_a_gates_events_reach_whoever_follows_its_run(engine: Engine, store: Store) -> None:
    tree = chain_with_gate({"gate": {**GATE["gate"], "sla_s": 0.3, "escalate_to": ["lead"], "on_timeout": "approve"}})
    run = await engine.start(tree, {"a": 1, "b": 2}, RunOptions(principal="model"))
    heard: list[RunEvent] = []
    with engine.events.listen(run.id, heard.append):
        await until(engine, run.id, "succeeded", "failed")
    assert [(e.kind, e.level) for e in heard] == [
        ("gate_opened", "notice"),
        ("gate_escalated", "warning"),
        ("gate_decided", "info"),
        ("settled", "info"),
    ]
    assert all(e.run_id == run.id for e in heard)
    assert heard[0].step == "1" and "awaits ana" in heard[0].message
    assert "escalated to lead" in heard[1].message
    assert "approve by system:sla" in heard[2].message
    assert len(engine.events) == 0  # nobody follows it any more
