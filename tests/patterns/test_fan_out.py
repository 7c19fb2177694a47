"""Parallel fan-out: strategies, criticality, per-branch timeouts, concurrency and the reduce step."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from patterns.engine import Engine
from patterns.errors import InvalidStep
from patterns.limits import Limits
from registry import Registry
from storage import StepRecord, Store

pytestmark = pytest.mark.anyio


async def records(engine: Engine, run_id: str) -> dict[str, StepRecord]:
    return {r.path: r for r in await engine.steps(run_id)}


def name() -> str:
    """A signal or probe key unique to one test."""
    return uuid.uuid4().hex


def hold(key: str, seconds: float, value: Any = None) -> dict[str, Any]:
    """A branch that signals ``key`` at once, then stays busy for ``seconds``."""
    return {"tool": "signal-hold", "input": {"name": key, "seconds": seconds, "value": value}}


def after(key: str, value: Any = None, fail: bool = False) -> dict[str, Any]:
    """A branch that waits for ``key`` to be signalled, then returns ``value`` (or fails permanently)."""
    return {"tool": "await-signal", "input": {"name": key, "value": value, "fail": fail}}


def probe(key: str, value: Any = None) -> dict[str, Any]:
    return {"tool": "inflight", "input": {"key": key, "seconds": 0.05, "value": value}}


# --- strategy `all` ----------------------------------------------------------------------------------------------


async def test_all_returns_every_branch_output_in_branch_order(engine: Engine) -> None:
    key = name()
    # branch 0 finishes last: it waits until branch 2 has run
    tree = {"fan_out": {"branches": [after(key, "first"), {"tool": "double"}, hold(key, 0, "third")]}}
    run = await engine.run(tree, {"value": 2})

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": "first"}, {"value": 4}, {"value": "third"}]
    assert run.missing == []


async def test_every_branch_gets_the_fan_out_input(engine: Engine) -> None:
    tree = {"fan_out": {"branches": [{"tool": "echo"}, {"tool": "echo", "input": {"seen": {"$": "input"}}}]}}
    run = await engine.run(tree, {"x": 1})

    assert run.output == [{"x": 1}, {"seen": {"x": 1}}]


async def test_branch_records_have_fan_out_paths_under_the_composite(engine: Engine) -> None:
    tree = {"chain": [{"tool": "echo"}, {"fan_out": {"branches": [{"tool": "echo"}, {"tool": "echo"}]}}]}
    run = await engine.run(tree, {"x": 1})

    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "0", "1", "1/fan_out/0", "1/fan_out/1"]
    assert steps["1"].kind == "fan_out"
    assert steps["1"].output == [{"x": 1}, {"x": 1}]
    assert run.usage_steps == 3


async def test_a_failing_critical_branch_fails_the_run_naming_its_path(engine: Engine) -> None:
    key = name()
    tree = {"fan_out": {"branches": [hold(key, 1.0), after(key, fail=True), {"tool": "echo"}]}}
    run = await engine.run(tree, {"x": 1})

    assert run.status == "failed"
    assert run.output is None
    assert run.error is not None
    assert run.error["type"] == "tool_failed"
    assert run.error["step"] == "fan_out/1"
    steps = await records(engine, run.id)
    assert steps["fan_out/1"].status == "failed"
    assert steps["fan_out/1"].error is not None
    assert steps["fan_out/1"].error["type"] == "tool_failed"
    assert steps[""].status == "failed"


async def test_siblings_in_flight_when_a_critical_branch_fails_are_recorded_cancelled(engine: Engine) -> None:
    key = name()
    tree = {"fan_out": {"branches": [hold(key, 1.0), after(key, fail=True)]}}
    run = await engine.run(tree, {"x": 1})

    assert run.status == "failed"
    steps = await records(engine, run.id)
    sibling = steps["fan_out/0"]
    assert sibling.status == "cancelled"
    assert sibling.error is not None
    assert sibling.error["type"] == "cancelled"
    assert sibling.output is None
    assert sibling.finished_at is not None


async def test_a_non_critical_branch_under_all_leaves_a_named_gap(engine: Engine) -> None:
    tree = {"fan_out": {"branches": [{"tool": "echo"}, {"tool": "broken", "critical": False}, {"tool": "echo"}]}}
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.missing == ["fan_out/1"]
    assert run.output == [{"x": 1}, None, {"x": 1}]
    assert run.error is None
    steps = await records(engine, run.id)
    assert steps["fan_out/1"].status == "failed"
    assert steps[""].status == "completed"
    assert steps[""].missing == ["fan_out/1"]


async def test_a_gap_inside_a_nested_fan_out_is_named_by_its_full_path(engine: Engine) -> None:
    inner = {"fan_out": {"branches": [{"tool": "echo"}, {"tool": "broken", "critical": False}]}}
    tree = {"chain": [{"tool": "echo"}, inner]}
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.missing == ["1/fan_out/1"]
    assert run.output == [{"x": 1}, None]


# --- strategy `best_effort` --------------------------------------------------------------------------------------


async def test_best_effort_turns_failures_into_gaps(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "strategy": "best_effort",
            "branches": [{"tool": "echo"}, {"tool": "broken"}, {"tool": "echo"}, {"tool": "crash"}],
        }
    }
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.output == [{"x": 1}, None, {"x": 1}, None]
    assert sorted(run.missing) == ["fan_out/1", "fan_out/3"]
    assert run.error is None
    steps = await records(engine, run.id)
    assert steps["fan_out/1"].status == "failed"
    assert steps["fan_out/3"].status == "failed"
    assert steps["fan_out/0"].status == "completed"


async def test_best_effort_with_no_failures_succeeds(engine: Engine) -> None:
    tree = {"fan_out": {"strategy": "best_effort", "branches": [{"tool": "echo"}, {"tool": "echo"}]}}
    run = await engine.run(tree, {"x": 1})

    assert run.status == "succeeded"
    assert run.missing == []


async def test_best_effort_fails_when_every_branch_failed(engine: Engine) -> None:
    tree = {"fan_out": {"strategy": "best_effort", "branches": [{"tool": "broken"}, {"tool": "crash"}]}}
    run = await engine.run(tree, {"x": 1})

    assert run.status == "failed"
    assert run.output is None
    assert run.error is not None
    assert run.error["type"] == "tool_failed"
    assert run.error["step"] == ""
    steps = await records(engine, run.id)
    assert steps["fan_out/0"].status == "failed"
    assert steps["fan_out/1"].status == "failed"


async def test_best_effort_does_not_absorb_a_limit_exceeded_branch(store: Store, registry: Registry) -> None:
    async with Engine(store, registry, Limits(max_payload_bytes=200)) as engine:
        tree = {
            "fan_out": {
                "strategy": "best_effort",
                "branches": [{"tool": "echo"}, {"tool": "blob", "input": {"size": 1000}}],
            }
        }
        run = await engine.run(tree, {"x": 1})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "limit_exceeded"
    assert "max_payload_bytes" in run.error["message"]


# --- strategy `quorum` -------------------------------------------------------------------------------------------


async def test_quorum_stops_once_enough_branches_succeeded_and_cancels_the_rest(engine: Engine) -> None:
    key, never = name(), name()
    tree = {
        "fan_out": {
            "strategy": "quorum",
            "quorum": 2,
            # branch 0 succeeds after branch 1; branch 2 would stay busy for a second
            "branches": [after(key, "a"), hold(key, 0, "b"), hold(never, 1.0, "c")],
        }
    }
    run = await engine.run(tree, None)

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": "a"}, {"value": "b"}]
    steps = await records(engine, run.id)
    assert steps["fan_out/0"].status == "completed"
    assert steps["fan_out/1"].status == "completed"
    assert steps["fan_out/2"].status == "cancelled"
    assert steps["fan_out/2"].error is not None
    assert steps["fan_out/2"].error["type"] == "cancelled"
    assert steps[""].status == "completed"


async def test_quorum_tolerates_failures_while_the_quorum_is_still_reachable(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "strategy": "quorum",
            "quorum": 2,
            "branches": [{"tool": "broken"}, {"tool": "echo", "input": {"n": 1}}, {"tool": "echo", "input": {"n": 2}}],
        }
    }
    run = await engine.run(tree, None)

    assert run.status == "succeeded", run.error
    assert run.output == [{"n": 1}, {"n": 2}]


async def test_an_unreachable_quorum_fails_fast_and_cancels_branches_in_flight(engine: Engine) -> None:
    never = name()
    tree = {
        "fan_out": {
            "strategy": "quorum",
            "quorum": 2,
            "branches": [{"tool": "broken"}, hold(never, 1.0), {"tool": "crash"}],
        }
    }
    run = await engine.run(tree, None)

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "tool_failed"
    assert run.error["step"] == ""
    assert "quorum" in run.error["message"]
    steps = await records(engine, run.id)
    assert steps["fan_out/1"].status == "cancelled"  # it would have succeeded, but it could not make a quorum


async def test_quorum_larger_than_the_branches_is_rejected_at_start(engine: Engine, store: Store) -> None:
    tree = {"fan_out": {"strategy": "quorum", "quorum": 3, "branches": [{"tool": "echo"}, {"tool": "echo"}]}}
    with pytest.raises(InvalidStep) as info:
        await engine.run(tree, None)

    assert info.value.type == "invalid_input"
    assert "quorum" in info.value.message
    assert await store.list_runs() == []


# --- per-branch timeout ------------------------------------------------------------------------------------------


async def test_branch_timeout_turns_a_slow_branch_into_a_timeout_gap(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "strategy": "best_effort",
            "branch_timeout_s": 0.1,
            "branches": [{"tool": "echo"}, {"tool": "sleepy", "input": {"seconds": 1.0}}],
        }
    }
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.output == [{"x": 1}, None]
    assert run.missing == ["fan_out/1"]
    steps = await records(engine, run.id)
    slow = steps["fan_out/1"]
    assert slow.status == "failed"
    assert slow.error is not None
    assert slow.error["type"] == "timeout"
    assert slow.output is None


async def test_branch_timeout_on_a_critical_branch_under_all_fails_the_run_with_timeout(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "branch_timeout_s": 0.1,
            "branches": [{"tool": "echo"}, {"tool": "sleepy", "input": {"seconds": 1.0}}],
        }
    }
    run = await engine.run(tree, {"x": 1})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "timeout"
    assert run.error["step"] == "fan_out/1"


async def test_branch_timeout_bounds_a_composite_branch_as_a_whole(engine: Engine) -> None:
    slow_chain = {
        "chain": [{"tool": "sleepy", "input": {"seconds": 0.05}}, {"tool": "sleepy", "input": {"seconds": 1.0}}],
        "critical": False,
    }
    tree = {"fan_out": {"branch_timeout_s": 0.2, "branches": [{"tool": "echo"}, slow_chain]}}
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.missing == ["fan_out/1"]
    steps = await records(engine, run.id)
    assert steps["fan_out/1/0"].status == "completed"
    assert steps["fan_out/1"].error is not None
    assert steps["fan_out/1"].error["type"] == "timeout"
    assert steps["fan_out/1/1"].status != "completed"
    assert steps["fan_out/1/1"].status != "started"


# --- concurrency -------------------------------------------------------------------------------------------------


async def test_branches_run_concurrently_without_max_concurrency(engine: Engine) -> None:
    key = name()
    run = await engine.run({"fan_out": {"branches": [probe(key) for _ in range(5)]}}, None)

    assert run.status == "succeeded", run.error
    assert max(r["peak"] for r in run.output) == 5


async def test_max_concurrency_bounds_the_branches_in_flight(engine: Engine) -> None:
    key = name()
    tree = {"fan_out": {"max_concurrency": 2, "branches": [probe(key, i) for i in range(6)]}}
    run = await engine.run(tree, None)

    assert run.status == "succeeded", run.error
    assert [r["value"] for r in run.output] == [0, 1, 2, 3, 4, 5]
    assert max(r["peak"] for r in run.output) == 2


async def test_the_run_concurrency_limit_bounds_tool_calls_across_fan_outs(store: Store, registry: Registry) -> None:
    key = name()
    async with Engine(store, registry, Limits(max_concurrency=3)) as engine:
        run = await engine.run({"fan_out": {"branches": [probe(key) for _ in range(7)]}}, None)

    assert run.status == "succeeded", run.error
    assert max(r["peak"] for r in run.output) == 3


# --- reduce ------------------------------------------------------------------------------------------------------


async def test_reduce_receives_the_results_list_as_its_input(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "strategy": "best_effort",
            "branches": [{"tool": "echo"}, {"tool": "broken"}, {"tool": "echo"}],
            "reduce": {"tool": "summarize"},
        }
    }
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.output == {"count": 3, "present": 2, "missing": 1}
    assert run.missing == ["fan_out/1"]
    steps = await records(engine, run.id)
    assert steps["fan_out/reduce"].input == [{"x": 1}, None, {"x": 1}]
    assert steps["fan_out/reduce"].status == "completed"


async def test_reduce_templates_see_results_and_the_fan_out_input(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "branches": [{"tool": "double"}, {"tool": "double", "input": {"value": 10}}],
            "reduce": {
                "tool": "echo",
                "input": {"all": {"$": "results"}, "second": {"$": "results[1].value"}, "input": {"$": "input"}},
            },
        }
    }
    run = await engine.run(tree, {"value": 1})

    assert run.status == "succeeded", run.error
    assert run.output == {"all": [{"value": 2}, {"value": 20}], "second": 20, "input": {"value": 1}}


async def test_reduce_after_quorum_gets_only_the_successful_outputs(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "strategy": "quorum",
            "quorum": 2,
            "branches": [{"tool": "broken"}, {"tool": "double"}, {"tool": "double"}],
            "reduce": {"tool": "total", "input": {"values": {"$": "results"}}},
        }
    }
    run = await engine.run(tree, {"value": 3})

    assert run.status == "succeeded", run.error
    assert run.output == {"total": 12}


async def test_branch_timeout_on_a_non_critical_branch_under_all_leaves_a_gap(engine: Engine) -> None:
    tree = {
        "fan_out": {
            "branch_timeout_s": 0.1,
            "branches": [{"tool": "sleepy", "input": {"seconds": 1.0}, "critical": False}, {"tool": "echo"}],
        }
    }
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.output == [None, {"x": 1}]
    assert run.missing == ["fan_out/0"]
    steps = await records(engine, run.id)
    assert steps["fan_out/0"].error is not None
    assert steps["fan_out/0"].error["type"] == "timeout"
