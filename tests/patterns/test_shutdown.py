"""Graceful shutdown: a draining engine starts no new run or step, lets the tool calls in flight finish within its
grace period, and leaves every unfinished run resumable with its lease released."""

from pathlib import Path

import anyio
import pytest

from patterns import Engine, RunOptions
from patterns.errors import ShuttingDown
from tests.conftest import calls
from tests.helpers import counters, resume_and_wait, wait_for_calls, wait_for_steps

pytestmark = pytest.mark.anyio


async def test_the_step_in_flight_finishes_within_the_grace_and_the_next_one_waits_for_another_engine(
    store, registry, limits, tmp_path: Path
):
    first, second = counters(tmp_path, "first", "second")
    step = {
        "chain": [
            {"tool": "sleepy", "input": {"seconds": 1.0, "value": 4, "counter": first}},
            {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": second}},
        ]
    }
    async with Engine(store, registry, limits, grace_s=10) as engine:
        started = await engine.start(step)
        await wait_for_calls(first, 1)  # the first step is in flight

    records = {r.path: r for r in await store.get_steps(started.id)}
    assert records["0"].status == "completed"  # it was allowed to finish
    assert "1" not in records and calls(second) == 0  # nothing new started
    stopped = await store.get_run(started.id)
    assert stopped.status == "running"
    assert stopped.lease_expires_at == 0.0  # released: another engine may resume it at once

    run, _ = await resume_and_wait(store, registry, limits, started.id)
    assert run.status == "succeeded", run.error
    assert run.output == {"value": 8}
    assert (calls(first), calls(second)) == (1, 1)


async def test_a_step_still_running_when_the_grace_ends_is_interrupted_and_resumable(
    store, registry, limits, tmp_path: Path
):
    (slow,) = counters(tmp_path, "slow")
    step = {"chain": [{"tool": "slow-once", "input": {"seconds": 60, "value": 1, "counter": slow}}]}
    with anyio.fail_after(20):  # the grace is 0.2 s, not the step's 60 s
        async with Engine(store, registry, limits, grace_s=0.2) as engine:
            started = await engine.start(step)
            await wait_for_steps(engine, started.id, ["0"])

    assert {r.path: r.status for r in await store.get_steps(started.id)}["0"] == "started"
    run, _ = await resume_and_wait(store, registry, limits, started.id)
    assert run.status == "succeeded", run.error
    assert calls(slow) == 2  # idempotent: interrupted, so invoked again


async def test_parallel_branches_in_flight_all_finish_and_the_waiting_ones_do_not_start(
    store, registry, limits, tmp_path: Path
):
    counter = counters(tmp_path, "branches")[0]
    branches = [{"tool": "sleepy", "input": {"seconds": 1.0, "value": n, "counter": counter}} for n in range(4)]
    async with Engine(store, registry, limits, grace_s=10) as engine:
        started = await engine.start({"fan_out": {"branches": branches, "max_concurrency": 2}})
        await wait_for_calls(counter, 2)  # two branches in flight, two waiting for a slot

    statuses = {r.path: r.status for r in await store.get_steps(started.id)}
    assert statuses == {"": "started", "fan_out/0": "completed", "fan_out/1": "completed"}
    run, _ = await resume_and_wait(store, registry, limits, started.id)
    assert run.status == "succeeded", run.error
    assert calls(counter) == 4


async def test_a_draining_engine_refuses_new_runs_but_still_answers_for_existing_ones(engine):
    existing = await engine.run({"tool": "noop", "input": {}}, options=RunOptions(idempotency_key="invoice-7"))

    engine.drain()

    assert engine.draining
    with pytest.raises(ShuttingDown, match="shutting down and starts no new runs"):
        await engine.start({"tool": "noop", "input": {}})
    again = await engine.start({"tool": "noop", "input": {}}, options=RunOptions(idempotency_key="invoice-7"))
    assert again.id == existing.id
