"""Runs a caller starts under a parent (``parent_run_id``) draw their budget from it through the store's ledger:
a supervisor cannot escape its budget by delegating, wherever the parent is (finished, parked at a gate, running
here), and a resumed parent still counts what its children used."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from patterns import Engine, LimitExceeded, Limits, RunOptions
from registry import Registry, WorkflowSpec
from storage import Store
from tests.conftest import tool_spec

pytestmark = pytest.mark.anyio

GATE = {"gate": {"title": "Go on?", "brief": "b", "approvers": ["ops"]}}
AGAIN = {"tool": "double", "input": {"value": {"$": "input.value"}}}  # after a gate, whose output is the decision


def doubles(n: int) -> dict[str, Any]:
    return {"chain": [{"tool": "double"}] * n}


async def test_a_child_of_a_finished_run_spends_only_what_the_parent_has_left(engine: Engine) -> None:
    parent = await engine.run(doubles(2), {"value": 1}, RunOptions(max_steps=5))
    child = await engine.run(doubles(10), {"value": 1}, RunOptions(parent_run_id=parent.id))
    assert child.status == "failed" and child.error is not None
    assert child.error["type"] == "limit_exceeded" and child.usage_steps == 3
    assert f"run {parent.id} has no steps left to give a child run" in child.error["message"]
    steps = {s.path: s.status for s in await engine.steps(child.id)}
    assert [steps[p] for p in ("0", "1", "2")] == ["completed"] * 3 and child.error["step"] == "3"  # all it had
    assert (await engine.get(parent.id)).held_steps == 3  # what the child used, counted against the parent
    with pytest.raises(LimitExceeded, match="has no steps left to give a child run"):
        await engine.start(doubles(1), {"value": 1}, RunOptions(parent_run_id=parent.id))


async def test_children_started_at_once_share_the_parents_budget_and_never_exceed_it(engine: Engine) -> None:
    parent = await engine.run(doubles(1), {"value": 1}, RunOptions(max_steps=41))
    results: list[Any] = []

    async def start() -> None:
        try:
            results.append(await engine.run(doubles(6), {"value": 1}, RunOptions(parent_run_id=parent.id)))
        except LimitExceeded as exc:
            results.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(start)
    runs = [r for r in results if not isinstance(r, LimitExceeded)]
    assert sum(r.usage_steps for r in runs) <= 40
    assert sum(r.status == "succeeded" for r in runs) >= 4  # each took a share (10, a quarter of 40) and used 6
    assert (await engine.get(parent.id)).held_steps == sum(r.usage_steps for r in runs)


async def test_a_parent_parked_at_a_gate_counts_what_its_children_spent_when_it_resumes(engine: Engine) -> None:
    parent = await engine.run({"chain": [{"tool": "double"}, GATE, AGAIN]}, {"value": 1}, RunOptions(max_steps=4))
    assert parent.status == "waiting"
    child = await engine.run(doubles(2), {"value": 1}, RunOptions(parent_run_id=parent.id))
    assert child.status == "succeeded"
    [gate] = await engine.store.gates.find(None, parent.id)
    await engine.decide_gate(gate.id, "approve", "ops")
    with anyio.fail_after(10):
        done = await engine.wait(parent.id, timeout_s=10)
    # 1 step before the gate and 2 by the child leave one: the step after the gate takes it
    assert done.error is None, done.error
    assert done.status == "succeeded" and done.usage_steps == 2 and done.held_steps == 2
    with pytest.raises(LimitExceeded, match=r"max_steps=4 exceeded: .* \(max_steps 4: 2 used by it, 2 held"):
        await engine.start(doubles(1), {"value": 1}, RunOptions(parent_run_id=parent.id))


async def test_a_running_parent_and_a_child_started_beside_it_share_one_budget(engine: Engine, counter: str) -> None:
    slow = {"tool": "sleepy", "input": {"seconds": 0.2, "counter": counter}}
    parent = await engine.start(
        {"chain": [slow, {"tool": "noop"}, {"tool": "noop"}, {"tool": "noop"}]}, {}, RunOptions(max_steps=4)
    )
    child = await engine.run(doubles(3), {"value": 1}, RunOptions(parent_run_id=parent.id))
    with anyio.fail_after(10):
        done = await engine.wait(parent.id, timeout_s=10)
    assert child.usage_steps + done.usage_steps <= 4
    assert {child.status, done.status} & {"failed"}  # one of them ran out: there were not enough steps for both


async def test_a_resumed_parent_counts_what_the_children_of_its_finished_delegation_steps_used(
    store: Store, registry: Registry, limits: Limits
) -> None:
    await registry.register_workflow(
        WorkflowSpec.model_validate({"name": "twice", "version": "1.0.0", "step": doubles(2)})
    )
    tree = {"chain": [{"workflow": "twice"}, GATE, AGAIN, {"tool": "double"}]}
    async with Engine(store, registry, limits) as first:
        parent = await first.run(tree, {"value": 1}, RunOptions(max_steps=4))
        assert parent.status == "waiting" and parent.usage_steps == 2
        [gate] = await store.gates.find(None, parent.id)
        await first.decide_gate(gate.id, "approve", "ops")
    async with Engine(store, registry, limits) as second:  # resumes it: the child's two steps still count
        await second.resume(parent.id)
        with anyio.fail_after(10):
            done = await second.wait(parent.id, timeout_s=10)
    assert done.error is None, done.error
    assert done.status == "succeeded" and done.usage_steps == 4
    starved = await Engine(store, registry, limits).__aenter__()
    try:
        tight = await starved.run(tree, {"value": 1}, RunOptions(max_steps=3))
        [gate] = await store.gates.find(None, tight.id)
        await starved.decide_gate(gate.id, "approve", "ops")
    finally:
        await starved.__aexit__(None, None, None)
    async with Engine(store, registry, limits) as third:
        await third.resume(tight.id)
        with anyio.fail_after(10):
            failed = await third.wait(tight.id, timeout_s=10)
    assert failed.status == "failed" and failed.error is not None and "max_steps" in failed.error["message"]
    assert failed.usage_steps == 3


async def test_a_child_tops_up_its_cost_a_share_at_a_time_and_stops_at_the_parents_cost(
    engine: Engine, registry: Registry
) -> None:
    await registry.register(tool_spec("double", "2.0.0", cost=1.0))
    priced = {"chain": [{"tool": "double@2"}] * 8}
    parent = await engine.run({"tool": "double@2"}, {"value": 1}, RunOptions(max_cost=7.0))
    child = await engine.run(priced, {"value": 1}, RunOptions(parent_run_id=parent.id))
    # the parent had 6.0 left: a first grant of a quarter (1.5), then top-ups, never past what was left
    assert child.status == "failed" and child.error is not None and child.error["step"] == "6"
    assert child.usage_cost == 6.0 and "max_cost_per_run" in child.error["message"]
    assert (await engine.get(parent.id)).held_cost == 6.0


async def test_a_parent_resumed_after_a_gate_counts_each_childs_steps_once(engine: Engine, registry: Registry) -> None:
    await registry.register_workflow(
        WorkflowSpec.model_validate({"name": "twice", "version": "1.0.0", "step": doubles(2)})
    )
    parent = await engine.run({"chain": [{"workflow": "twice"}, GATE, AGAIN]}, {"value": 1}, RunOptions(max_steps=3))
    assert parent.status == "waiting" and parent.usage_steps == 2
    [gate] = await engine.store.gates.find(None, parent.id)
    await engine.decide_gate(gate.id, "approve", "ops")  # resumed here: the delegation step replays
    with anyio.fail_after(10):
        done = await engine.wait(parent.id, timeout_s=10)
    assert done.error is None, done.error
    assert done.status == "succeeded" and done.usage_steps == 3 and len(await engine.store.child_runs(parent.id)) == 1


async def test_two_engines_on_one_postgres_share_a_parents_budget(postgres_url: str, limits: Limits) -> None:
    async with Store.open(postgres_url) as first_store, Store.open(postgres_url) as second_store:
        registries = [Registry(first_store), Registry(second_store)]
        await registries[0].register_all(tool_spec(name) for name in ("double", "noop"))
        async with (
            Engine(first_store, registries[0], limits) as first,
            Engine(second_store, registries[1], limits) as second,
        ):
            parent = await first.run(doubles(1), {"value": 1}, RunOptions(max_steps=21))
            results: list[Any] = []

            async def start(engine: Engine) -> None:
                try:
                    results.append(await engine.run(doubles(3), {"value": 1}, RunOptions(parent_run_id=parent.id)))
                except LimitExceeded as exc:
                    results.append(exc)

            async with anyio.create_task_group() as group:
                for n in range(12):
                    group.start_soon(start, first if n % 2 else second)
            runs = [r for r in results if not isinstance(r, LimitExceeded)]
            used = sum(r.usage_steps for r in runs)
            assert used <= 20 and sum(r.status == "succeeded" for r in runs) >= 2
            assert (await first.get(parent.id)).held_steps == used  # every grant given back but what was used
