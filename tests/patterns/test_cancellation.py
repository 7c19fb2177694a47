"""Cancelling runs: in-flight steps stop at once and are recorded `cancelled`; settled runs are left alone."""

from pathlib import Path

import anyio
import pytest

from patterns import InvalidStep, RunOptions
from patterns.engine import Engine
from storage import RunUpdate
from tests.conftest import calls
from tests.helpers import wait_for_steps

pytestmark = pytest.mark.anyio


async def test_cancelling_a_run_blocked_in_a_long_step_stops_it_at_once(engine, counter, tmp_path: Path):
    after = str(tmp_path / "after.txt")
    Path(after).touch()
    step = {
        "chain": [
            {"tool": "double", "input": {"value": 1, "counter": counter}},
            {"tool": "sleepy", "input": {"seconds": 10, "counter": counter}},
            {"tool": "double", "input": {"value": 2, "counter": after}},
        ]
    }
    started = await engine.start(step)
    await wait_for_steps(engine, started.id, ["1"])

    with anyio.fail_after(3):
        run = await engine.cancel(started.id, "operator changed their mind")

    assert run.status == "cancelled"
    assert run.error["type"] == "cancelled"
    assert "operator changed their mind" in run.error["message"]
    assert run.finished_at is not None
    records = {r.path: r for r in await engine.steps(run.id)}
    assert records["0"].status == "completed"
    assert records["1"].status == "cancelled"
    assert records["1"].finished_at is not None
    assert "2" not in records
    assert calls(counter) == 2
    assert calls(after) == 0
    assert not engine.is_active(run.id)
    assert (await engine.get(run.id)).status == "cancelled"


async def test_cancelling_a_run_finishes_every_record_it_left_open(engine, counter):
    started = await engine.start({"chain": [{"tool": "sleepy", "input": {"seconds": 10, "counter": counter}}]})
    await wait_for_steps(engine, started.id, ["0"])

    with anyio.fail_after(3):
        await engine.cancel(started.id)

    records = await engine.steps(started.id)
    assert {r.path: r.status for r in records} == {"": "cancelled", "0": "cancelled"}


async def test_cancelling_inside_a_fan_out_cancels_every_branch(engine, counter):
    branches = [{"tool": "sleepy", "input": {"seconds": 10, "value": i, "counter": counter}} for i in range(3)]
    started = await engine.start({"fan_out": {"branches": branches}})
    paths = [f"fan_out/{i}" for i in range(3)]
    await wait_for_steps(engine, started.id, paths)

    with anyio.fail_after(3):
        run = await engine.cancel(started.id)

    assert run.status == "cancelled"
    assert run.error["type"] == "cancelled"
    records = {r.path: r for r in await engine.steps(run.id)}
    for path in paths:
        assert records[path].status == "cancelled"
        assert records[path].error["type"] == "cancelled"
    assert records[""].status == "cancelled"
    assert calls(counter) == 3


async def test_cancelling_a_settled_run_leaves_it_as_it_was(engine):
    done = await engine.run({"tool": "double", "input": {"value": 4}})
    assert done.status == "succeeded"
    steps_before = await engine.steps(done.id)

    run = await engine.cancel(done.id)

    assert run == done
    assert await engine.get(done.id) == done
    assert await engine.steps(done.id) == steps_before


async def test_cancelling_a_failed_run_leaves_its_error(engine):
    failed = await engine.run({"tool": "crash"}, {})
    assert failed.status == "failed"

    run = await engine.cancel(failed.id)

    assert run.status == "failed"
    assert run.error == failed.error


async def test_a_blocking_sync_tool_in_flight_does_not_block_cancellation(engine, tmp_path: Path):
    gate, done = tmp_path / "release", tmp_path / "done"
    step = {"chain": [{"tool": "blocking-wait", "input": {"release": str(gate), "done": str(done)}}]}
    started = await engine.start(step)
    await wait_for_steps(engine, started.id, ["0"])

    try:
        with anyio.fail_after(3):
            run = await engine.cancel(started.id)
        # the thread is still blocked: cancellation did not wait for it
        assert not done.exists()
    finally:
        gate.write_text("go")
        with anyio.fail_after(5):
            while not done.exists():
                await anyio.sleep(0.01)

    assert run.status == "cancelled"
    records = {r.path: r for r in await engine.steps(run.id)}
    assert records["0"].status == "cancelled"


async def test_a_blocking_sleep_in_flight_does_not_keep_a_cancelled_run_running(engine):
    # 3 s: still in flight when the cancel comes, however slow the machine
    started = await engine.start({"chain": [{"tool": "blocking-sleep", "input": {"seconds": 3}}]})
    await wait_for_steps(engine, started.id, ["0"])

    with anyio.fail_after(3):
        run = await engine.cancel(started.id)

    assert run.status == "cancelled"
    assert {r.path: r.status for r in await engine.steps(run.id)}["0"] == "cancelled"


async def test_cancelling_an_unknown_run_raises_run_not_found(engine):
    from storage import RunNotFound

    with pytest.raises(RunNotFound):
        await engine.cancel("no-such-run")


async def wait_for_status(engine: Engine, run_id: str, status: str) -> None:
    with anyio.fail_after(5):
        while (await engine.get(run_id)).status != status:
            await anyio.sleep(0.02)


async def test_cancelling_a_run_cancels_its_child_runs_and_theirs(engine):
    long = {"tool": "sleepy", "input": {"seconds": 30}}
    parent = await engine.start(long)
    child = await engine.start(long, options=RunOptions(parent_run_id=parent.id))
    grandchild = await engine.start(long, options=RunOptions(parent_run_id=child.id))
    finished = await engine.run({"tool": "noop", "input": {}}, options=RunOptions(parent_run_id=parent.id))
    unrelated = await engine.start(long)

    cancelled = await engine.cancel(parent.id, "the vendor withdrew", by="alice")

    assert cancelled.status == "cancelled"
    for run_id in (child.id, grandchild.id):
        run = await engine.get(run_id)
        assert run.status == "cancelled"
        assert run.error is not None and "its parent run" in run.error["message"]
        assert "the vendor withdrew" in run.error["message"]
        assert [(e["action"], e["by"]) for e in run.history] == [("cancel", "alice")]
    assert (await engine.get(finished.id)).status == "succeeded"
    assert (await engine.get(unrelated.id)).status == "running"
    assert [(e["action"], e["by"], e["reason"]) for e in (await engine.get(parent.id)).history] == [
        ("cancel", "alice", "the vendor withdrew")
    ]
    await engine.cancel(unrelated.id)


async def test_no_child_run_starts_under_a_cancelled_parent(engine):
    parent = await engine.start({"tool": "sleepy", "input": {"seconds": 30}})
    await engine.cancel(parent.id)

    with pytest.raises(InvalidStep, match=f"parent run {parent.id} is cancelled"):
        await engine.start({"tool": "noop", "input": {}}, options=RunOptions(parent_run_id=parent.id))


async def test_cancelling_from_another_engine_stops_the_parent_and_child_where_they_run(engine, store, registry):
    long = {"tool": "sleepy", "input": {"seconds": 30}}
    parent = await engine.start(long)
    child = await engine.start(long, options=RunOptions(parent_run_id=parent.id))

    async with Engine(store, registry, recover=False) as elsewhere:  # e.g. `podium runs cancel` in a shell
        await elsewhere.cancel(parent.id, "from the CLI", by="bob")

    with anyio.fail_after(5):  # the engine running them notices within a poll
        while engine.is_active(parent.id) or engine.is_active(child.id):
            await anyio.sleep(0.02)
    for run_id in (parent.id, child.id):
        assert (await engine.get(run_id)).status == "cancelled"
        assert {r.status for r in await engine.steps(run_id)} == {"cancelled"}


async def test_a_run_whose_parent_is_recorded_cancelled_is_stopped_with_it(engine, store):
    parent = await engine.run({"tool": "noop", "input": {}})
    child = await engine.start(
        {"tool": "sleepy", "input": {"seconds": 30}}, options=RunOptions(parent_run_id=parent.id)
    )
    # as a process that cancels only the parent would: who asked first (Engine.cancel's order), then the status
    await store.append_history(parent.id, {"action": "cancel", "by": "carol", "reason": "budget pulled"})
    error = {"type": "cancelled", "message": "cancelled: budget pulled", "step": None}
    store.submit_run(RunUpdate(parent.id, status="cancelled", error=error, set_error=True))
    await store.flush(parent.id)

    await wait_for_status(engine, child.id, "cancelled")

    record = await engine.get(child.id)
    assert record.error is not None
    assert f"its parent run {parent.id} was cancelled: budget pulled" in record.error["message"]
    with anyio.fail_after(5):  # who cancelled is carried down to the child
        while not (await engine.get(child.id)).history:
            await anyio.sleep(0.02)
    assert [(e["action"], e["by"]) for e in (await engine.get(child.id)).history] == [("cancel", "carol")]
