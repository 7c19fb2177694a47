"""Delegation: a workflow step runs a published workflow as a child run, on budgets drawn from its ancestors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from patterns import Engine, LimitExceeded, Limits, RunOptions, UnknownTool
from registry import Registry, WorkflowSpec
from storage import Store

pytestmark = pytest.mark.anyio

DOUBLE_TWICE: dict[str, Any] = {
    "name": "double-twice",
    "version": "1.0.0",
    "step": {"chain": [{"tool": "double"}, {"tool": "double"}]},
}
APPROVED_DOUBLE: dict[str, Any] = {
    "name": "approved-double",
    "version": "1.0.0",
    "step": {
        "chain": [
            {"gate": {"title": "Double it?", "brief": "b", "approvers": ["ops"]}},
            {"tool": "double", "input": {"value": {"$": "input.value"}}},
        ]
    },
}


async def publish(registry: Registry, *workflows: dict[str, Any]) -> None:
    for workflow in workflows:
        await registry.register_workflow(WorkflowSpec.model_validate(workflow))


async def test_a_workflow_step_runs_a_child_run_and_takes_its_output(engine: Engine, registry: Registry) -> None:
    await publish(registry, DOUBLE_TWICE)
    run = await engine.run({"chain": [{"workflow": "double-twice@^1"}, {"tool": "double"}]}, {"value": 1})
    [child] = await engine.store.child_runs(run.id)
    steps = {s.path: s for s in await engine.steps(run.id)}
    assert run.status == "succeeded" and run.output == {"value": 8}
    assert (child.status, child.output, child.parent_run_id, child.usage_steps) == (
        "succeeded",
        {"value": 4},
        run.id,
        2,
    )
    assert run.usage_steps == 3  # the child's two steps count towards the parent
    assert steps["0"].kind == "workflow" and steps["0"].attempts[0]["child_run_id"] == child.id
    assert run.lock["workflow:double-twice@^1"] == "1.0.0" and child.lock["workflow:double-twice"] == "1.0.0"


async def test_an_unknown_workflow_or_a_too_deep_run_tree_is_refused_before_anything_runs(
    engine: Engine, registry: Registry
) -> None:
    with pytest.raises(UnknownTool, match="step 0: unknown workflow 'nope'"):
        await engine.start({"chain": [{"workflow": "nope"}]}, {})
    await publish(registry, DOUBLE_TWICE)
    parent = await engine.run({"tool": "noop"}, {})
    options = RunOptions(parent_run_id=parent.id)
    child = await engine.run({"tool": "noop"}, {}, options)
    grandchild = await engine.run({"tool": "noop"}, {}, RunOptions(parent_run_id=child.id))
    great = await engine.run({"tool": "noop"}, {}, RunOptions(parent_run_id=grandchild.id))
    assert great.status == "succeeded"  # four levels: the default max_run_depth
    with pytest.raises(LimitExceeded, match="max_run_depth=4 exceeded: a child of run .* would be 5 deep"):
        await engine.start({"tool": "noop"}, {}, RunOptions(parent_run_id=great.id))


async def test_children_racing_for_the_parents_last_steps_cannot_both_spend_them(
    engine: Engine, registry: Registry
) -> None:
    await publish(registry, DOUBLE_TWICE)
    tree = {"fan_out": {"branches": [{"workflow": "double-twice"}, {"workflow": "double-twice"}]}}
    run = await engine.run(tree, {"value": 1}, RunOptions(max_steps=3))
    children = await engine.store.child_runs(run.id)
    assert run.status == "failed" and run.error is not None
    assert run.error["type"] == "limit_exceeded" and "has none left" in run.error["message"]
    assert sum(c.usage_steps for c in children) == 3 and run.usage_steps == 3  # never more than the parent had


async def test_a_childs_budget_is_the_least_of_what_it_asks_and_what_the_parent_has_left(
    engine: Engine, registry: Registry
) -> None:
    await publish(registry, DOUBLE_TWICE)

    def tree(asks: int) -> dict[str, Any]:
        return {"chain": [{"tool": "double"}, {"workflow": "double-twice", "budget": {"max_steps": asks}}]}

    run = await engine.run(tree(10), {"value": 1}, RunOptions(max_steps=10))
    [child] = await engine.store.child_runs(run.id)
    assert run.status == "succeeded" and child.limits["max_steps"] == 9  # what the parent had left
    starved = await engine.run(tree(2), {"value": 1}, RunOptions(max_steps=2))
    assert starved.status == "failed" and starved.error is not None and "max_steps" in starved.error["message"]
    # more than the parent has in all is refused before anything runs
    with pytest.raises(LimitExceeded, match=r"step 1 asks budget.max_steps=50 for its child run, more than the run"):
        await engine.start(tree(50), {"value": 1}, RunOptions(max_steps=10))
    slow = {"workflow": "double-twice", "deadline_s": 9999}
    with pytest.raises(LimitExceeded, match=r"step \(root\) asks deadline_s=9999 for its child run"):
        await engine.start(slow, {"value": 1}, RunOptions(deadline_s=60))


async def test_a_parent_waits_for_a_child_at_a_gate_and_a_recovered_parent_reattaches_to_the_same_child(
    store: Store, registry: Registry, limits: Limits
) -> None:
    await publish(registry, APPROVED_DOUBLE)
    tree = {"chain": [{"workflow": "approved-double"}, {"tool": "double"}]}
    async with Engine(store, registry, limits) as first:
        parent = await first.start(tree, {"value": 3})
        with anyio.fail_after(10):
            while not (await store.child_runs(parent.id, ["waiting"])):
                await anyio.sleep(0.02)
        assert (await store.get_run(parent.id)).status == "running"  # waiting on its child, not failed
    # the first engine stopped with the parent unfinished; the next one resumes it
    async with Engine(store, registry, limits) as second:
        resumed = await second.resume(parent.id)
        assert resumed.status == "running"
        [child] = await store.child_runs(parent.id)
        [gate] = await store.gates.find(None, child.id)
        await second.decide_gate(gate.id, "approve", "ops")
        with anyio.fail_after(10):
            done = await second.wait(parent.id, timeout_s=10)
    assert done.status == "succeeded" and done.output == {"value": 12}
    assert [c.id for c in await store.child_runs(parent.id)] == [child.id]  # re-attached, not started again


async def test_a_workflow_that_starts_itself_is_refused_when_published(store: Store, registry: Registry) -> None:
    from patterns import InvalidStep
    from patterns.workflows import workflow_checker

    check = workflow_checker(Limits(), registry)
    ping = {"name": "ping", "version": "1.0.0", "step": {"chain": [{"tool": "noop"}, {"workflow": "pong"}]}}
    pong = {"name": "pong", "version": "1.0.0", "step": {"workflow": "ping"}}
    itself = {"name": "loop", "version": "1.0.0", "step": {"chain": [{"tool": "noop"}, {"workflow": "loop"}]}}
    with pytest.raises(InvalidStep, match=r"workflow loop@1.0.0 starts itself: loop -> loop"):
        await check(WorkflowSpec.model_validate(itself))
    await publish(registry, {**ping, "step": {"tool": "noop"}, "version": "0.9.0"})
    await publish(registry, pong)  # pong -> ping@0.9.0, which delegates to nothing: fine
    with pytest.raises(InvalidStep, match=r"workflow ping@1.0.0 starts itself: ping -> pong -> ping"):
        await check(WorkflowSpec.model_validate(ping))


async def test_workflows_of_one_file_may_delegate_to_each_other_but_not_in_a_loop(
    store: Store, registry: Registry, tmp_path: Path
) -> None:
    from patterns import InvalidStep
    from patterns.workflows import workflow_checker

    check = workflow_checker(Limits(), registry)
    coordinator = {"name": "coordinator", "version": "1.0.0", "step": {"workflow": "specialist@^1"}}
    specialist = {"name": "specialist", "version": "1.0.0", "step": {"tool": "double"}}
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"workflow": [coordinator, specialist]}))  # used before it is declared
    await registry.register_file(both, check_workflow=check)
    assert [w.name for w in await registry.list_workflows()] == ["coordinator", "specialist"]

    loop = tmp_path / "loop.json"
    loop.write_text(
        json.dumps(
            {
                "workflow": [
                    {"name": "a", "version": "1.0.0", "step": {"workflow": "b"}},
                    {"name": "b", "version": "1.0.0", "step": {"workflow": "a"}},
                ]
            }
        )
    )
    with pytest.raises(InvalidStep, match=r"workflow a@1.0.0 starts itself: a -> b -> a"):
        await registry.register_file(loop, check_workflow=check)
    assert [w.name for w in await registry.list_workflows()] == ["coordinator", "specialist"]  # nothing of it
    with pytest.raises(UnknownTool):  # and what was staged for the check is gone
        await Engine(store, registry).start_workflow("a")
