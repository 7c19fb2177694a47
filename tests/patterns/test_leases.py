"""Lease fencing: an engine that stalled past its lease, and whose run another engine took over, stops executing it,
never makes a non-idempotent call for it, and records nothing more for it."""

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from patterns import Engine, scheduler
from storage import Store
from tests.conftest import calls, tool_spec
from tests.helpers import counters, wait_for_steps

pytestmark = pytest.mark.anyio


def take_over(db: Path, run_id: str) -> None:
    """What another engine's claim does once this one's lease has expired: the run is now its own."""
    with sqlite3.connect(db, timeout=10) as conn:
        statement = "UPDATE runs SET lease_owner = 'other-engine', lease_expires_at = ? WHERE id = ?"
        conn.execute(statement, (time.time() + 60, run_id))


async def test_the_heartbeat_notices_a_lost_lease_and_the_engine_stops_the_run(
    store: Store, registry, limits, tmp_path: Path
):
    first, second = counters(tmp_path, "first", "second")
    step = {
        "chain": [
            # long enough that a loaded machine's heartbeat notices the loss before the step would end
            {"tool": "sleepy", "input": {"seconds": 5.0, "value": 1, "counter": first}},
            {"tool": "double", "input": {"value": {"$": "prev.value"}, "counter": second}},
        ]
    }
    async with Engine(store, registry, limits, lease_s=0.6) as engine:
        started = await engine.start(step)
        await wait_for_steps(engine, started.id, ["0"])
        take_over(tmp_path / "podium.db", started.id)
        await until_stopped(engine, started.id)  # its task is over: no later step can start here

    assert calls(second) == 0
    run = await store.get_run(started.id)
    assert (run.status, run.lease_owner, run.error) == ("running", "other-engine", None)  # not settled by the loser


async def then_pay(registry, tmp_path: Path, seconds: float) -> tuple[dict[str, Any], str, str]:
    """A chain of a ``seconds`` sleep, then a payment (a non-idempotent tool); the two steps' counter files."""
    await registry.register(tool_spec("double", "9.0.0", idempotent=False))
    first, payment = counters(tmp_path, "first", "payment")
    step = {
        "chain": [
            {"tool": "sleepy", "input": {"seconds": seconds, "value": 1, "counter": first}},
            {"tool": "double@9.0.0", "input": {"value": {"$": "prev.value"}, "counter": payment}},
        ]
    }
    return step, first, payment


async def until_stopped(engine: Engine, run_id: str) -> None:
    with anyio.fail_after(5):
        while engine.is_active(run_id):
            await anyio.sleep(0.02)


async def test_a_non_idempotent_call_is_not_made_by_an_engine_that_lost_the_run(
    store: Store, registry, limits, tmp_path: Path
):
    step, first, payment = await then_pay(registry, tmp_path, 0.5)
    async with Engine(store, registry, limits, lease_s=60) as engine:  # no heartbeat during the test
        started = await engine.start(step)
        await wait_for_steps(engine, started.id, ["0"])
        take_over(tmp_path / "podium.db", started.id)
        await until_stopped(engine, started.id)

    assert calls(first) == 1
    assert calls(payment) == 0  # checked the lease just before the call, found it gone
    run = await store.get_run(started.id)
    assert (run.status, run.lease_owner) == ("running", "other-engine")


async def test_a_run_cancelled_elsewhere_makes_no_non_idempotent_call_and_is_recorded_cancelled(
    store: Store, registry, limits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The scheduler's poll for cancellations would stop the run during its first step or not, by its tick's phase;
    # without it, the lease check before the payment is what finds the cancellation, every time.
    monkeypatch.setattr(scheduler, "CANCEL_POLL_S", math.inf)
    step, _, payment = await then_pay(registry, tmp_path, 0.3)
    async with Engine(store, registry, limits) as engine:
        started = await engine.start(step)
        await wait_for_steps(engine, started.id, ["0"])
        async with Engine(store, registry, limits, recover=False) as elsewhere:  # `podium runs cancel`
            await elsewhere.cancel(started.id, "the vendor withdrew")
        await until_stopped(engine, started.id)

    assert calls(payment) == 0
    run = await store.get_run(started.id)
    assert run.status == "cancelled" and run.error is not None and "the vendor withdrew" in run.error["message"]
    statuses = {r.path: r.status for r in await store.get_steps(started.id)}
    assert statuses == {"": "cancelled", "0": "completed", "1": "cancelled"}
