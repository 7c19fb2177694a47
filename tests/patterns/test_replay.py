"""Replay: an interrupted run resumes over its step records; completed steps are not invoked again, interrupted
idempotent steps are, interrupted non-idempotent ones need an operator, and the run keeps its locked versions."""

from pathlib import Path

import anyio
import pytest

from patterns.engine import Engine
from patterns.limits import Limits
from registry import ToolSpec
from tests.conftest import MovableClock, calls, tool_spec
from tests.helpers import counters, resume_and_wait, start_and_interrupt, wait_for_steps

pytestmark = pytest.mark.anyio


async def test_stopping_the_engine_interrupts_a_run_without_settling_it(store, registry, limits, counter):
    step = {"chain": [{"tool": "sleepy", "input": {"seconds": 30, "counter": counter}}]}

    run = await start_and_interrupt(store, registry, limits, step, None, "0")

    stored = await store.get_run(run.id)
    assert stored.status == "running"
    assert stored.error is None
    assert stored.finished_at is None
    assert {r.path: r.status for r in await store.get_steps(run.id)}["0"] == "started"


async def test_resume_skips_completed_steps_and_reinvokes_the_interrupted_idempotent_one(
    store, registry, limits, tmp_path: Path
):
    first, second, third = counters(tmp_path, "first", "second", "third")
    step = {
        "chain": [
            {"tool": "double", "input": {"value": {"$": "input.value"}, "counter": first}},
            {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": second}},
            {"tool": "slow-once", "input": {"seconds": 30, "value": {"$": "prev.value"}, "counter": third}},
        ]
    }
    started = await start_and_interrupt(store, registry, limits, step, {"value": 3}, "2")
    before = {r.path: r for r in await store.get_steps(started.id)}
    assert (await store.get_run(started.id)).status == "running"
    assert (calls(first), calls(second), calls(third)) == (1, 1, 1)

    run, steps = await resume_and_wait(store, registry, limits, started.id)

    assert run.status == "succeeded", run.error
    assert run.output == {"value": 12, "calls": 2}
    assert calls(first) == 1
    assert calls(second) == 1
    assert calls(third) == 2
    assert steps["0"] == before["0"]
    assert steps["1"] == before["1"]
    assert steps["2"].status == "completed"
    assert run.usage_steps == 3


async def test_an_interrupted_non_idempotent_step_is_not_invoked_again_and_needs_attention(
    store, registry, limits, tmp_path: Path
):
    await registry.register(tool_spec("sleepy", "2.0.0", idempotent=False))
    first, effect, after = counters(tmp_path, "first", "effect", "after")
    step = {
        "chain": [
            {"tool": "double", "input": {"value": 1, "counter": first}},
            {"tool": "sleepy@2.0.0", "input": {"seconds": 30, "counter": effect}},
            {"tool": "double", "input": {"value": 2, "counter": after}},
        ]
    }
    started = await start_and_interrupt(store, registry, limits, step, None, "1", called=effect)

    run, _ = await resume_and_wait(store, registry, limits, started.id)

    assert run.status == "needs_attention"
    assert run.error is not None
    assert run.error["step"] == "1"
    assert "sleepy@2.0.0" in run.error["message"]
    assert "idempotent" in run.error["message"]
    assert calls(first) == 1
    assert calls(effect) == 1
    assert calls(after) == 0


async def test_a_resumed_run_uses_its_locked_versions_even_after_a_newer_one_is_registered(
    store, registry, limits, tmp_path: Path
):
    slow, doubled = counters(tmp_path, "slow", "doubled")
    step = {
        "chain": [
            {"tool": "slow-once", "input": {"seconds": 30, "counter": slow}},
            {"tool": "double", "input": {"value": {"$": "input.value"}, "counter": doubled}},
        ]
    }
    started = await start_and_interrupt(store, registry, limits, step, {"value": 3}, "0")
    assert started.lock == {"slow-once": "1.0.0", "double": "1.0.0"}
    newer = ToolSpec(
        name="double", version="2.0.0", provider={"type": "python", "target": "tests.tools:double_v2"}, idempotent=True
    )
    await registry.register(newer)

    run, steps = await resume_and_wait(store, registry, limits, started.id)

    assert run.status == "succeeded", run.error
    assert run.output == {"value": 6}
    assert (steps["1"].tool, steps["1"].version) == ("double", "1.0.0")
    assert run.lock == {"slow-once": "1.0.0", "double": "1.0.0"}
    assert calls(doubled) == 1
    # a new run resolves `double` to the newer version, so the lock is what kept the resumed run on 1.0.0
    async with Engine(store, registry, limits) as engine:
        fresh = await engine.run({"tool": "double", "input": {"value": 3}})
    assert fresh.output == {"value": 6, "impl": "v2"}
    assert fresh.lock == {"double": "2.0.0"}


async def test_resuming_a_settled_run_returns_it_unchanged(engine, counter):
    done = await engine.run({"chain": [{"tool": "double", "input": {"value": 2, "counter": counter}}]})
    assert done.status == "succeeded"
    steps_before = await engine.steps(done.id)

    run = await engine.resume(done.id)
    later = await engine.wait(done.id)

    assert run == done
    assert later == done
    assert await engine.steps(done.id) == steps_before
    assert calls(counter) == 1


async def test_resuming_a_failed_run_does_not_invoke_its_steps_again(engine, counter):
    failed = await engine.run({"tool": "crash", "input": {"counter": counter}})
    assert failed.status == "failed"

    run = await engine.resume(failed.id)

    assert run == failed
    assert await engine.get(failed.id) == failed
    assert calls(counter) == 1


async def test_resuming_a_cancelled_run_leaves_it_cancelled(engine, counter):
    started = await engine.start({"tool": "sleepy", "input": {"seconds": 30, "counter": counter}})
    await wait_for_steps(engine, started.id, [""])
    with anyio.fail_after(3):
        cancelled = await engine.cancel(started.id)

    run = await engine.resume(started.id)

    assert run == cancelled
    assert run.status == "cancelled"
    assert calls(counter) == 1


async def test_resume_skips_the_completed_branches_of_a_fan_out(store, registry, limits, tmp_path: Path):
    left, right, slow = counters(tmp_path, "left", "right", "slow")
    step = {
        "fan_out": {
            "branches": [
                {"tool": "double", "input": {"value": 1, "counter": left}},
                {"tool": "double", "input": {"value": 2, "counter": right}},
                {"tool": "slow-once", "input": {"seconds": 30, "value": 3, "counter": slow}},
            ]
        }
    }
    async with Engine(store, registry, limits) as engine:
        started = await engine.start(step)
        await wait_for_steps(engine, started.id, ["fan_out/0", "fan_out/1"], status="completed")
        await wait_for_steps(engine, started.id, ["fan_out/2"])

    run, steps = await resume_and_wait(store, registry, limits, started.id)

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": 2}, {"value": 4}, {"value": 3, "calls": 2}]
    assert (calls(left), calls(right), calls(slow)) == (1, 1, 2)
    assert {p: s.status for p, s in steps.items()} == {
        "": "completed",
        "fan_out/0": "completed",
        "fan_out/1": "completed",
        "fan_out/2": "completed",
    }


async def test_an_interrupted_non_idempotent_step_needs_attention_even_when_it_is_not_critical(
    store, registry, limits, tmp_path: Path
):
    await registry.register(tool_spec("sleepy", "2.0.0", idempotent=False))
    (effect,) = counters(tmp_path, "effect")
    step = {
        "chain": [
            {"tool": "sleepy@2.0.0", "input": {"seconds": 30, "counter": effect}, "critical": False},
            {"tool": "received"},
        ]
    }
    started = await start_and_interrupt(store, registry, limits, step, None, "0", called=effect)

    run, _ = await resume_and_wait(store, registry, limits, started.id)

    # only an operator may decide whether the call took effect; a non-critical step must not turn that into a gap
    assert run.status == "needs_attention"
    assert run.error is not None
    assert run.error["step"] == "0"
    assert calls(effect) == 1


async def test_an_interrupted_run_can_be_cancelled_and_then_stays_cancelled(store, registry, limits, counter):
    step = {"chain": [{"tool": "sleepy", "input": {"seconds": 30, "counter": counter}}]}
    started = await start_and_interrupt(store, registry, limits, step, None, "0")

    # recover=False: this engine's scheduler does not resume the run on its own before the cancel (a race in which
    # the tool would be invoked a second time, as recovery should; not what this test is about)
    async with Engine(store, registry, limits, recover=False) as engine:
        with anyio.fail_after(10):  # a hang, not a slow machine
            cancelled = await engine.cancel(started.id, "abandoned")
        resumed = await engine.resume(started.id)

    assert cancelled.status == "cancelled"
    assert cancelled.error is not None
    assert cancelled.error["type"] == "cancelled"
    assert "abandoned" in cancelled.error["message"]
    assert resumed == cancelled
    assert calls(counter) == 1
    assert {r.path: r.status for r in await store.get_steps(started.id)} == {"": "cancelled", "0": "cancelled"}


async def test_a_deadline_that_passed_while_no_engine_ran_the_run_ends_it_timed_out_on_resume(
    store, registry, tmp_path: Path, clock: MovableClock
):
    limits = Limits(max_run_s=1.0)
    first, second = counters(tmp_path, "first", "second")
    step = {
        "chain": [
            {"tool": "sleepy", "input": {"seconds": 30, "counter": first}},
            {"tool": "double", "input": {"value": 1, "counter": second}},
        ]
    }
    started = await start_and_interrupt(store, registry, limits, step, None, "0", called=first)
    clock.advance(1.1)  # the engine is down past the deadline

    run, steps = await resume_and_wait(store, registry, limits, started.id)

    assert run.status == "timed_out"
    assert run.error is not None and run.error["type"] == "limit_exceeded" and "max_run_s" in run.error["message"]
    assert calls(second) == 0
    assert steps["0"].status == "cancelled"
