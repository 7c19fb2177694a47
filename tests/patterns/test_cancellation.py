"""Cancelling runs: in-flight steps stop at once and are recorded `cancelled`; settled runs are left alone."""

from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from patterns.engine import Engine
from storage import StepRecord
from tests.conftest import calls

pytestmark = pytest.mark.anyio


async def wait_for_steps(
    engine: Engine, run_id: str, paths: Sequence[str], status: str = "started"
) -> dict[str, StepRecord]:
    """Poll the store until every path in ``paths`` has a record with ``status``; return the records by path."""
    with anyio.fail_after(5):
        while True:
            records = {r.path: r for r in await engine.steps(run_id)}
            if all(p in records and records[p].status == status for p in paths):
                return records
            await anyio.sleep(0.01)


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
    started = await engine.start({"chain": [{"tool": "blocking-sleep", "input": {"seconds": 0.5}}]})
    await wait_for_steps(engine, started.id, ["0"])

    with anyio.fail_after(3):
        run = await engine.cancel(started.id)

    assert run.status == "cancelled"
    assert {r.path: r.status for r in await engine.steps(run.id)}["0"] == "cancelled"


async def test_cancelling_an_unknown_run_raises_run_not_found(engine):
    from storage import RunNotFound

    with pytest.raises(RunNotFound):
        await engine.cancel("no-such-run")
