"""Hard limits: each one ends the step or run with `limit_exceeded` naming the limit and its value; a caller may
lower limits for its run but never raise them."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from patterns.engine import Engine, RunOptions
from patterns.errors import LimitExceeded, PatternError
from patterns.limits import Limits
from registry import Registry
from storage import StepRecord, Store
from tests.conftest import calls, tool_spec

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def engine_with(store: Store, registry: Registry, **limits: Any) -> AsyncIterator[Engine]:
    async with Engine(store, registry, Limits(**limits)) as engine:
        yield engine


def doubles(n: int, counter: str, ref: str = "double") -> dict[str, Any]:
    """A chain of ``n`` doubling steps, each counted in ``counter``."""
    first = {"tool": ref, "input": {"value": 1, "counter": counter}}
    rest = [{"tool": ref, "input": {"value": {"$": "prev.value"}, "counter": counter}} for _ in range(n - 1)]
    return {"chain": [first, *rest]}


def assert_limit(error: dict[str, Any], limit: str, value: object) -> None:
    assert error["type"] == "limit_exceeded"
    assert f"{limit}={value}" in error["message"]


async def tool_records(engine: Engine, run_id: str) -> list[StepRecord]:
    return [r for r in await engine.steps(run_id) if r.kind == "tool"]


async def test_a_chain_longer_than_max_steps_is_refused_before_it_runs(store, registry, counter):
    async with engine_with(store, registry, max_steps=3) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(doubles(5, counter))
        assert await engine.store.list_runs(None, 10) == []

    assert (raised.value.limit, raised.value.value) == ("max_steps", 3)
    assert "at least 5 tool steps" in raised.value.message
    assert calls(counter) == 0


async def test_max_steps_stops_a_run_whose_size_shows_only_while_it_runs(store, registry, counter):
    # the items come from the input, so the number of steps is known only once the map starts
    step = {
        "chain": [
            {"map_reduce": {"map": {"tool": "double", "input": {"value": {"$": "item"}, "counter": counter}}}},
            {"tool": "double", "input": {"value": 1, "counter": counter}},
        ]
    }
    async with engine_with(store, registry, max_steps=3, max_concurrency=1) as engine:
        run = await engine.run(step, [1, 2, 3, 4, 5])

        assert run.status == "failed"
        assert run.error is not None
        assert_limit(run.error, "max_steps", 3)
        assert run.error["step"] == "0/map/3"
        assert calls(counter) == 3
        steps = await tool_records(engine, run.id)
        assert [s.path for s in steps] == ["0/map/0", "0/map/1", "0/map/2"]
        assert all(s.status == "completed" for s in steps)
        assert run.usage_steps == 3


async def test_max_fan_out_is_checked_before_the_run_is_created(store, registry):
    step = {"fan_out": {"branches": [{"tool": "noop"}, {"tool": "noop"}, {"tool": "noop"}]}}
    async with engine_with(store, registry, max_fan_out=2) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(step, {})

    assert isinstance(raised.value, PatternError)
    assert raised.value.type == "limit_exceeded"
    assert (raised.value.limit, raised.value.value) == ("max_fan_out", 2)
    assert "max_fan_out=2" in raised.value.message
    assert "3 branches" in raised.value.message
    assert await store.list_runs() == []


async def test_max_fan_out_also_bounds_the_items_of_a_map(store, registry):
    step = {"map_reduce": {"items": [1, 2, 3, 4], "map": {"tool": "double", "input": {"value": {"$": "item"}}}}}
    async with engine_with(store, registry, max_fan_out=3) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(step)

    assert (raised.value.limit, raised.value.value) == ("max_fan_out", 3)
    assert await store.list_runs() == []


async def test_max_depth_is_checked_before_the_run_is_created(store, registry):
    step = {"chain": [{"chain": [{"chain": [{"tool": "noop"}]}]}]}
    async with engine_with(store, registry, max_depth=2) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(step, {})

    assert (raised.value.limit, raised.value.value) == ("max_depth", 2)
    assert "max_depth=2" in raised.value.message
    assert raised.value.step == "0/0"
    assert await store.list_runs() == []


async def test_a_tree_exactly_at_max_depth_runs(store, registry):
    async with engine_with(store, registry, max_depth=2) as engine:
        run = await engine.run({"chain": [{"chain": [{"tool": "noop"}]}]}, {})

    assert run.status == "succeeded"


async def test_max_iterations_is_checked_before_the_run_is_created(store, registry):
    step = {
        "refine": {
            "generate": {"tool": "draft"},
            "evaluate": {"tool": "grade"},
            "score": "score",
            "threshold": 0.9,
            "max_iterations": 5,
        }
    }
    async with engine_with(store, registry, max_iterations=3) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(step, {"text": "x"})

    assert (raised.value.limit, raised.value.value) == ("max_iterations", 3)
    assert "max_iterations=3" in raised.value.message
    assert await store.list_runs() == []


async def test_a_tool_outside_allowed_tools_is_refused_before_the_run_is_created(store, registry):
    step = {"chain": [{"tool": "double", "input": {"value": 1}}, {"tool": "add", "input": {"a": 1, "b": 2}}]}
    async with engine_with(store, registry, allowed_tools=("d*",)) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(step)

    assert raised.value.limit == "allowed_tools"
    assert "allowed_tools" in raised.value.message
    assert "d*" in raised.value.message
    assert "'add'" in raised.value.message
    assert raised.value.step == "1"
    assert await store.list_runs() == []


async def test_a_fallback_outside_allowed_tools_is_refused_too(store, registry):
    async with engine_with(store, registry, allowed_tools=("broken",)) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start({"tool": "broken", "fallback": "echo"})

    assert raised.value.limit == "allowed_tools"
    assert "'echo'" in raised.value.message
    assert await store.list_runs() == []


async def test_max_cost_per_run_stops_the_call_that_would_overspend(store, registry, counter):
    await registry.register(tool_spec("double", "3.0.0", cost=1.0))
    async with engine_with(store, registry, max_cost_per_run=2.0) as engine:
        run = await engine.run(doubles(3, counter, ref="double@3.0.0"))

        assert run.status == "failed"
        assert run.error is not None
        assert_limit(run.error, "max_cost_per_run", 2.0)
        assert run.error["step"] == "2"
        assert calls(counter) == 2
        assert run.usage_cost == 2.0
        assert [s.status for s in await tool_records(engine, run.id)] == ["completed", "completed", "failed"]


async def test_retries_are_charged_against_max_cost_per_run(store, registry, counter):
    await registry.register(tool_spec("flaky", "3.0.0", cost=1.0))
    step = {
        "tool": "flaky@3.0.0",
        "input": {"fail_times": 10, "counter": counter},
        "retry": {"max_attempts": 5, "initial_s": 0.01, "jitter": 0},
    }
    async with engine_with(store, registry, max_cost_per_run=2.0) as engine:
        run = await engine.run(step)

    assert run.status == "failed"
    assert run.error is not None
    assert_limit(run.error, "max_cost_per_run", 2.0)
    assert calls(counter) == 2


async def test_a_big_input_is_refused_before_the_run_is_created(store, registry):
    async with engine_with(store, registry, max_payload_bytes=100) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start({"tool": "echo"}, {"text": "x" * 500})

    assert (raised.value.limit, raised.value.value) == ("max_payload_bytes", 100)
    assert "max_payload_bytes=100" in raised.value.message
    assert await store.list_runs() == []


async def test_a_big_output_fails_the_run_at_the_step_that_produced_it(store, registry):
    step = {"chain": [{"tool": "blob", "input": {"size": 500}}, {"tool": "received"}]}
    async with engine_with(store, registry, max_payload_bytes=100) as engine:
        run = await engine.run(step)

        assert run.status == "failed"
        assert run.error is not None
        assert_limit(run.error, "max_payload_bytes", 100)
        assert run.error["step"] == "0"
        paths = [s.path for s in await tool_records(engine, run.id)]
        assert paths == ["0"]


async def test_max_run_s_ends_a_run_timed_out(store, registry, counter):
    step = {"chain": [{"tool": "sleepy", "input": {"seconds": 10, "counter": counter}}, {"tool": "received"}]}
    async with engine_with(store, registry, max_run_s=0.2) as engine:
        run = await engine.run(step)

        assert run.status == "timed_out"
        assert run.error is not None
        assert_limit(run.error, "max_run_s", 0.2)
        assert calls(counter) == 1
        records = {s.path: s for s in await engine.steps(run.id)}
        assert records["0"].status != "started"
        assert "1" not in records


async def test_a_callers_deadline_ends_the_run_timed_out(engine, counter):
    run = await engine.run(
        {"tool": "sleepy", "input": {"seconds": 10, "counter": counter}}, options=RunOptions(deadline_s=0.2)
    )

    assert run.status == "timed_out"
    assert_limit(run.error, "max_run_s", 0.2)
    assert run.limits["max_run_s"] == 0.2


async def test_a_caller_can_lower_max_steps(engine, counter):
    with pytest.raises(LimitExceeded) as raised:
        await engine.start(doubles(3, counter), options=RunOptions(max_steps=2))

    assert (raised.value.limit, raised.value.value) == ("max_steps", 2)
    assert "at least 3 tool steps" in raised.value.message
    assert "raise options.budget.max_steps" in raised.value.message  # names the option that is too low
    assert calls(counter) == 0

    run = await engine.run(doubles(2, counter), options=RunOptions(max_steps=2))
    assert run.limits["max_steps"] == 2
    assert run.status == "succeeded"


async def test_a_caller_can_lower_limits_through_the_limits_mapping(engine):
    step = {"fan_out": {"branches": [{"tool": "noop"}, {"tool": "noop"}, {"tool": "noop"}]}}
    with pytest.raises(LimitExceeded) as raised:
        await engine.start(step, {}, RunOptions(limits={"max_fan_out": 2}))

    assert (raised.value.limit, raised.value.value) == ("max_fan_out", 2)


async def test_a_caller_asking_for_more_steps_than_the_server_allows_keeps_the_servers_limit(store, registry, counter):
    async with engine_with(store, registry, max_steps=3) as engine:
        for options in (RunOptions(max_steps=100), RunOptions(limits={"max_steps": 100})):
            with pytest.raises(LimitExceeded) as raised:
                await engine.start(doubles(5, counter), options=options)
            assert (raised.value.limit, raised.value.value) == ("max_steps", 3)
            assert "budget" not in raised.value.message  # the server's limit, which no option can raise

            plan = await engine.plan(doubles(3, counter), options)
            assert plan.limits.max_steps == 3


async def test_a_caller_cannot_raise_the_cost_limit(store, registry, counter):
    await registry.register(tool_spec("double", "3.0.0", cost=1.0))
    async with engine_with(store, registry, max_cost_per_run=1.0) as engine:
        run = await engine.run(doubles(2, counter, ref="double@3.0.0"), options=RunOptions(max_cost=100.0))

    assert run.limits["max_cost_per_run"] == 1.0
    assert run.status == "failed"
    assert run.error is not None
    assert_limit(run.error, "max_cost_per_run", 1.0)
    assert calls(counter) == 1


async def test_a_caller_can_set_a_cost_limit_where_the_server_has_none(engine, registry, counter):
    await registry.register(tool_spec("double", "3.0.0", cost=1.0))

    run = await engine.run(doubles(3, counter, ref="double@3.0.0"), options=RunOptions(max_cost=1.5))

    assert run.limits["max_cost_per_run"] == 1.5
    assert run.status == "failed"
    assert_limit(run.error, "max_cost_per_run", 1.5)
    assert calls(counter) == 1


async def test_a_caller_cannot_extend_the_run_duration(store, registry, counter):
    step = {"tool": "sleepy", "input": {"seconds": 10, "counter": counter}}
    async with engine_with(store, registry, max_run_s=0.2) as engine:
        run = await engine.run(step, options=RunOptions(deadline_s=3600, limits={"max_run_s": 3600}))

    assert run.limits["max_run_s"] == 0.2
    assert run.status == "timed_out"
    assert run.error is not None
    assert_limit(run.error, "max_run_s", 0.2)


async def test_a_caller_cannot_widen_allowed_tools(store, registry):
    async with engine_with(store, registry, allowed_tools=("noop",)) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(
                {"tool": "double", "input": {"value": 1}}, options=RunOptions(limits={"allowed_tools": ["*"]})
            )

    assert raised.value.limit == "allowed_tools"
    assert await store.list_runs() == []


async def test_a_non_critical_step_cannot_absorb_a_step_limit(store, registry, counter):
    # the items come from the input, so the limit is met while the run goes on, at a non-critical step
    double = {"tool": "double", "input": {"value": {"$": "item"}, "counter": counter}, "critical": False}
    step = {"chain": [{"map_reduce": {"map": double, "max_concurrency": 1}}, {"tool": "received"}]}
    async with engine_with(store, registry, max_steps=1) as engine:
        run = await engine.run(step, [1, 2])

    assert run.status == "failed"
    assert run.missing == []
    assert run.error is not None
    assert_limit(run.error, "max_steps", 1)
    assert run.error["step"] == "0/map/1"
    assert calls(counter) == 1


async def test_a_non_critical_step_cannot_absorb_a_cost_limit(store, registry, counter):
    await registry.register(tool_spec("double", "3.0.0", cost=1.0))
    step = {
        "chain": [
            {"tool": "double@3.0.0", "input": {"value": 1, "counter": counter}},
            {"tool": "double@3.0.0", "input": {"value": 2, "counter": counter}, "critical": False},
            {"tool": "received"},
        ]
    }
    async with engine_with(store, registry, max_cost_per_run=1.0) as engine:
        run = await engine.run(step)

    assert run.status == "failed"
    assert run.missing == []
    assert run.error is not None
    assert_limit(run.error, "max_cost_per_run", 1.0)
    assert calls(counter) == 1


async def test_a_best_effort_map_cannot_absorb_a_step_limit(store, registry, counter):
    double = {"tool": "double", "input": {"value": {"$": "item"}, "counter": counter}}
    step = {"map_reduce": {"map": double, "strategy": "best_effort", "max_concurrency": 1}}
    async with engine_with(store, registry, max_steps=2) as engine:
        run = await engine.run(step, [0, 1, 2])

    assert run.status == "failed"
    assert run.error is not None
    assert_limit(run.error, "max_steps", 2)
    assert run.error["step"] == "map/2"


async def test_a_fan_out_wider_than_max_steps_is_refused_before_it_runs(store, registry, counter):
    branches = [{"tool": "double", "input": {"value": i, "counter": counter}} for i in range(3)]
    step = {"fan_out": {"branches": branches, "strategy": "best_effort"}}
    async with engine_with(store, registry, max_steps=2) as engine:
        with pytest.raises(LimitExceeded) as raised:
            await engine.start(step)
        quorum = {"fan_out": {"branches": branches, "strategy": "quorum", "quorum": 2}}
        await engine.plan(quorum)  # two branches can decide it: it may fit, so it is not refused

    assert (raised.value.limit, raised.value.value) == ("max_steps", 2)
    assert "at least 3 tool steps" in raised.value.message


async def test_a_fallback_that_would_overspend_fails_with_limit_exceeded(store, registry, counter):
    await registry.register(tool_spec("echo", "3.0.0", cost=5.0))
    step = {"chain": [{"tool": "broken", "input": {"counter": counter}, "fallback": "echo@3.0.0"}]}
    async with engine_with(store, registry, max_cost_per_run=1.0) as engine:
        run = await engine.run(step)

        assert run.status == "failed"
        assert run.error is not None
        assert_limit(run.error, "max_cost_per_run", 1.0)
        assert run.error["step"] == "0"
        assert calls(counter) == 1
        records = {s.path: s for s in await engine.steps(run.id)}
        assert records["0"].status == "failed"


async def test_a_fallback_whose_output_is_too_big_fails_with_limit_exceeded(store, registry):
    step = {"chain": [{"tool": "broken", "input": {"size": 500}, "fallback": "blob"}]}
    async with engine_with(store, registry, max_payload_bytes=100) as engine:
        run = await engine.run(step)

    assert run.status == "failed"
    assert run.error is not None
    assert_limit(run.error, "max_payload_bytes", 100)
    assert run.error["step"] == "0"
