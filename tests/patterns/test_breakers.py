"""Circuit breakers: a tool version that keeps failing transiently is refused at once for a while, by every engine
sharing the database; one probe call decides when it is tried again. The scheduler's pass is run by hand here
(``engine.breakers.sync()``) so that no test waits on its tick."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from patterns import Engine, Limits
from registry import Registry
from registry.models import BreakerSettings
from storage import Store
from tests.conftest import MovableClock, calls, tool_spec

pytestmark = pytest.mark.anyio

FAST = BreakerSettings(min_calls=4, failure_rate=0.5, window_s=60, open_s=30, max_open_s=100)


@pytest.fixture
async def engine(store: Store, registry: Registry, limits: Limits) -> AsyncIterator[Engine]:
    async with Engine(store, registry, limits, breaker=FAST) as running:
        yield running


def crash(counter: str) -> dict[str, Any]:
    return {"tool": "crash", "input": {"counter": counter}}


async def trip(engine: Engine, counter: str) -> None:
    for _ in range(4):
        run = await engine.run(crash(counter), {})
        assert run.error is not None and run.error["type"] == "tool_failed"
    await engine.breakers.sync()


async def test_a_tool_failing_transiently_is_refused_at_once_once_its_breaker_opens(engine: Engine, counter: str):
    await trip(engine, counter)
    refused = await engine.run(crash(counter), {})
    assert calls(counter) == 4  # the fifth run did not call it
    assert refused.status == "failed" and refused.error is not None and refused.error["type"] == "circuit_open"
    message = refused.error["message"]
    assert "the circuit breaker of crash@1.0.0 is open (4 of its last 4 calls failed), so it is not called" in message
    assert "`podium breakers reset crash@1.0.0` closes it" in message
    [record] = await engine.steps(refused.id)
    assert record.attempts[0]["error"]["type"] == "circuit_open" and record.cost == 0
    tipped = (await engine.store.list_runs(None, 10))[1]  # the fourth failing run: its call opened the breaker
    [entry] = tipped.history
    assert (entry["action"], entry["by"], entry["steps"]) == ("breaker opened", "podium", [""])
    assert entry["reason"] == "circuit breaker of crash@1.0.0 opened for 30s: 4 of its last 4 calls failed"


async def test_an_open_breaker_goes_to_the_fallback_and_a_route_takes_its_default(engine: Engine, counter: str):
    await trip(engine, counter)
    fallen = await engine.run({**crash(counter), "fallback": "echo"}, {})
    routed = await engine.run(
        {"route": {"on": "input.kind", "cases": {"a": crash(counter)}, "default": {"tool": "echo"}}}, {"kind": "a"}
    )
    assert fallen.status == "succeeded" and fallen.output == {"counter": counter}
    assert routed.status == "succeeded" and calls(counter) == 4
    route = {s.path: s for s in await engine.steps(routed.id)}[""]
    assert route.attempts[0] == {"case": "a", "taken": "default", "because": "circuit_open", "tool": "crash@1.0.0"}


async def test_after_open_s_one_probe_decides_and_a_failed_probe_doubles_the_wait(
    engine: Engine, counter: str, clock: MovableClock
) -> None:
    await trip(engine, counter)
    clock.advance(31)  # open_s is over: the next call probes
    probe = await engine.run(crash(counter), {})
    assert probe.error is not None and probe.error["type"] == "tool_failed" and calls(counter) == 5
    [record] = await engine.store.breakers.all()
    assert (record.state, record.open_s, record.opens) == ("open", 60.0, 2)  # open again, for twice as long
    clock.advance(31)
    still = await engine.run(crash(counter), {})
    assert still.error is not None and still.error["type"] == "circuit_open" and calls(counter) == 5

    clock.advance(30)  # 61 s after it opened again: the next call probes, fails, and the wait hits its cap
    probed = await engine.run(crash(counter), {})
    assert probed.error is not None and probed.error["type"] == "tool_failed" and calls(counter) == 6
    [record] = await engine.store.breakers.all()
    assert (record.state, record.open_s, record.opens) == ("open", 100.0, 3)  # 120 s, capped at max_open_s


async def test_a_successful_probe_closes_the_breaker(engine: Engine, counter: str, clock: MovableClock) -> None:
    for _ in range(4):
        await engine.run({"tool": "flaky", "input": {"fail_times": 4, "counter": counter}}, {})
    await engine.breakers.sync()
    refused = await engine.run({"tool": "flaky", "input": {"fail_times": 4, "counter": counter}}, {})
    assert refused.error is not None and refused.error["type"] == "circuit_open"
    clock.advance(31)
    probe = await engine.run({"tool": "flaky", "input": {"fail_times": 4, "counter": counter}}, {})
    assert probe.status == "succeeded" and calls(counter) == 5
    [record] = await engine.store.breakers.all()
    assert (record.state, record.opens) == ("closed", 0)
    after = await engine.run({"tool": "flaky", "input": {"fail_times": 4, "counter": counter}}, {})
    assert after.status == "succeeded"


async def test_permanent_failures_and_a_disabled_breaker_never_open_one(
    engine: Engine, registry: Registry, counter: str
) -> None:
    for _ in range(6):
        await engine.run({"tool": "broken", "input": {"counter": counter}}, {})
    await registry.register(tool_spec("crash", "2.0.0", breaker=False))
    for _ in range(6):
        await engine.run({"tool": "crash@2", "input": {"counter": counter}}, {})
    await engine.breakers.sync()
    assert await engine.store.breakers.all() == []
    assert calls(counter) == 12


async def test_two_engines_share_one_breaker(postgres_url: str, limits: Limits, tmp_path: Path) -> None:
    counter = str(tmp_path / "calls")
    Path(counter).touch()
    async with Store.open(postgres_url) as first_store, Store.open(postgres_url) as second_store:
        registry = Registry(first_store)
        await registry.register(tool_spec("crash"))
        async with (
            Engine(first_store, registry, limits, breaker=FAST) as first,
            Engine(second_store, Registry(second_store), limits, breaker=FAST) as second,
        ):
            assert (await second.run(crash(counter), {})).error is not None  # second follows crash@1.0.0 too
            for _ in range(2):  # with the second's call: 3 failures of 3 calls, under min_calls
                await first.run(crash(counter), {})
            await second.breakers.sync()
            await first.breakers.sync()
            assert await first.store.breakers.all() == []
            await first.run(crash(counter), {})
            await first.breakers.sync()  # 4 of 4 (counted by two engines): open
            await second.breakers.sync()  # the second reads it on its next pass
            refused = await second.run(crash(counter), {})
    assert refused.error is not None and refused.error["type"] == "circuit_open"
    assert calls(counter) == 4
