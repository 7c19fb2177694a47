"""An operator resolves a stopped run: retry re-runs what did not complete, skip records a step as done with a given
output. Both reopen the run for the next engine, record who did it, and refuse what cannot be done without changing
anything."""

from pathlib import Path
from typing import Any

import anyio
import pytest

from patterns import ContractViolation, Engine, Limits, interventions
from patterns.errors import OperatorError
from registry import Registry
from storage import RunChanged, RunRecord, Store
from tests.conftest import calls, tool_spec
from tests.helpers import counters, resume_and_wait, start_and_interrupt

pytestmark = pytest.mark.anyio

VALUE_OUT = {"type": "object", "required": ["value"], "properties": {"value": {"type": "number"}}}


async def needs_attention(store: Store, registry: Registry, limits: Limits, tmp_path: Path) -> tuple[str, list[str]]:
    """A run whose step 1 was interrupted: ``double`` -> ``slow-once@2`` (not idempotent) -> ``double``.

    slow-once sleeps on its first call only, so a retry returns at once.
    """
    await registry.register(tool_spec("slow-once", "2.0.0", idempotent=False, output_schema=VALUE_OUT))
    first, effect, after = counters(tmp_path, "first", "effect", "after")
    step = {
        "chain": [
            {"tool": "double", "input": {"value": 1, "counter": first}},
            {"tool": "slow-once@2.0.0", "input": {"seconds": 30, "value": {"$": "prev.value"}, "counter": effect}},
            {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": after}},
        ]
    }
    started = await start_and_interrupt(store, registry, limits, step, None, "1", called=effect)
    run, _ = await resume_and_wait(store, registry, limits, started.id)
    assert run.status == "needs_attention"
    return started.id, [first, effect, after]


async def execute(store: Store, registry: Registry, limits: Limits, run_id: str) -> tuple[RunRecord, dict[str, Any]]:
    run, steps = await resume_and_wait(store, registry, limits, run_id)
    return run, {path: record.status for path, record in steps.items()}


async def test_retry_invokes_the_interrupted_step_again_and_the_run_completes(store, registry, limits, tmp_path):
    run_id, (first, effect, after) = await needs_attention(store, registry, limits, tmp_path)

    reopened = await interventions.retry(store, run_id, by="alice", reason="the payment did not go out")

    assert reopened.steps == ("1",)
    assert reopened.run.status == "running"
    assert reopened.run.lease_owner is None and reopened.run.error is None and reopened.run.finished_at is None
    assert (await store.get_steps(run_id))[1].status == "cancelled"  # no longer "interrupted": an operator decided
    run, statuses = await execute(store, registry, limits, run_id)
    assert run.status == "succeeded", run.error
    assert run.output == {"value": 4}
    assert (calls(first), calls(effect), calls(after)) == (1, 2, 1)
    assert set(statuses.values()) == {"completed"}
    [entry] = run.history
    assert entry["action"] == "retry" and entry["by"] == "alice" and entry["steps"] == ["1"]
    assert entry["reason"] == "the payment did not go out" and entry["from_status"] == "needs_attention"
    assert entry["at"] > 0


async def test_skip_records_the_step_as_done_with_the_given_output_and_the_run_goes_on(
    store, registry, limits, tmp_path
):
    run_id, (first, effect, after) = await needs_attention(store, registry, limits, tmp_path)

    await interventions.skip(store, registry, run_id, step="1", output={"value": 21, "calls": 0}, by="bob")

    run, _ = await execute(store, registry, limits, run_id)
    assert run.status == "succeeded", run.error
    assert run.output == {"value": 42}  # the next step received the operator's output
    assert (calls(first), calls(effect), calls(after)) == (1, 1, 1)  # the interrupted step was not invoked again
    skipped = {r.path: r for r in await store.get_steps(run_id)}["1"]
    assert (skipped.status, skipped.output, skipped.tool, skipped.version) == (
        "completed",
        {"value": 21, "calls": 0},
        "slow-once",
        "2.0.0",
    )
    [entry] = run.history
    assert (entry["action"], entry["by"], entry["steps"], entry["output"]) == (
        "skip",
        "bob",
        ["1"],
        {"value": 21, "calls": 0},
    )


async def test_a_skip_output_that_breaks_the_tool_contract_is_refused_and_changes_nothing(
    store, registry, limits, tmp_path
):
    run_id, _ = await needs_attention(store, registry, limits, tmp_path)
    before = await store.get_run(run_id)
    steps_before = await store.get_steps(run_id)

    with pytest.raises(ContractViolation) as caught:
        await interventions.skip(store, registry, run_id, step="1", output={"value": "twenty"}, by="bob")

    assert "slow-once@2.0.0" in caught.value.message and "value" in caught.value.message
    assert await store.get_run(run_id) == before
    assert await store.get_steps(run_id) == steps_before


async def test_bad_requests_name_what_is_wrong_and_what_would_work(store, registry, limits, tmp_path):
    run_id, _ = await needs_attention(store, registry, limits, tmp_path)
    before = await store.get_run(run_id)

    with pytest.raises(OperatorError, match=r"no step at path '7'.*1 \(slow-once@2.0.0, started\)"):
        await interventions.retry(store, run_id, by="alice", step="7")
    with pytest.raises(OperatorError, match=r"step 0 of run .* completed; only steps that did not complete"):
        await interventions.skip(store, registry, run_id, step="0", output={"value": 1}, by="alice")
    with pytest.raises(OperatorError, match=r"step \(root\) is a chain step; skip works on a tool step"):
        await interventions.skip(store, registry, run_id, step="", output=None, by="alice")
    assert await store.get_run(run_id) == before

    async with Engine(store, registry, limits) as engine:
        done = await engine.run({"tool": "noop", "input": {}})
        with pytest.raises(OperatorError, match=r"is succeeded; only a run that is needs_attention, failed"):
            await interventions.retry(store, done.id, by="alice")
        running = await engine.start({"tool": "sleepy", "input": {"seconds": 30}})
        with pytest.raises(OperatorError, match=r"is running; retry applies .* podium runs cancel"):
            await interventions.retry(store, running.id, by="alice")
        await engine.cancel(running.id)


async def test_retry_of_one_step_leaves_the_other_interrupted_step_for_the_operator(store, registry, limits, tmp_path):
    await registry.register(tool_spec("slow-once", "3.0.0", idempotent=False))
    left, right = counters(tmp_path, "left", "right")
    branches = [{"tool": "slow-once@3.0.0", "input": {"seconds": 30, "counter": c}} for c in (left, right)]
    async with Engine(store, registry, limits) as engine:
        started = await engine.start({"fan_out": {"branches": branches}})
        with anyio.fail_after(5):
            while calls(left) + calls(right) < 2:
                await anyio.sleep(0.01)
    first, _ = await execute(store, registry, limits, started.id)
    assert first.status == "needs_attention"

    await interventions.retry(store, started.id, by="alice", step="fan_out/0")
    again, statuses = await execute(store, registry, limits, started.id)

    assert again.status == "needs_attention"
    assert again.error is not None and again.error["step"] == "fan_out/1"
    assert statuses["fan_out/1"] == "started"
    with pytest.raises(OperatorError, match=r"no interrupted step at fan_out/0 .* interrupted steps are: fan_out/1"):
        await interventions.retry(store, started.id, by="alice", step="fan_out/0")

    await interventions.skip(store, registry, started.id, step="fan_out/1", output={"value": "by hand"}, by="bob")
    done, statuses = await execute(store, registry, limits, started.id)

    assert done.status == "succeeded", done.error
    assert done.output == [{"value": None, "calls": 2}, {"value": "by hand"}]
    assert (calls(left), calls(right)) == (2, 1)
    assert [e["action"] for e in done.history] == ["retry", "skip"]


async def test_two_operators_at_once_one_reopens_the_run_the_other_is_told(store, registry, limits, tmp_path):
    run_id, _ = await needs_attention(store, registry, limits, tmp_path)
    outcomes: list[str] = []

    async def act(name: str) -> None:
        try:
            await interventions.retry(store, run_id, by=name)
            outcomes.append("reopened")
        except (RunChanged, OperatorError) as exc:
            outcomes.append(type(exc).__name__)

    async with anyio.create_task_group() as tg:
        for name in ("alice", "bob", "carol"):
            tg.start_soon(act, name)

    assert sorted(outcomes)[-1] == "reopened" and outcomes.count("reopened") == 1
    assert len((await store.get_run(run_id)).history) == 1


async def test_retry_of_a_failed_run_runs_the_failed_step_again_but_not_the_completed_ones(
    store, registry, limits, tmp_path
):
    first, flaky = counters(tmp_path, "first", "flaky")
    step = {
        "chain": [
            {"tool": "double", "input": {"value": 5, "counter": first}},
            {"tool": "flaky", "input": {"fail_times": 1, "counter": flaky, "value": {"$": "prev.value"}}},
        ]
    }
    async with Engine(store, registry, limits) as engine:
        failed = await engine.run(step)
    assert failed.status == "failed"

    await interventions.retry(store, failed.id, by="alice")
    run, _ = await execute(store, registry, limits, failed.id)

    assert run.status == "succeeded", run.error
    assert run.output == {"value": 10, "calls": 2}
    assert (calls(first), calls(flaky)) == (1, 2)


async def test_a_retried_run_gets_its_full_deadline_again(store, registry, tmp_path):
    limits = Limits(max_run_s=0.5)
    async with Engine(store, registry, limits) as engine:
        timed_out = await engine.run({"tool": "sleepy", "input": {"seconds": 5}})
    assert timed_out.status == "timed_out"

    reopened = await interventions.retry(store, timed_out.id, by="alice")

    assert reopened.run.deadline_at is not None
    assert reopened.run.deadline_at > timed_out.updated_at + 0.4
