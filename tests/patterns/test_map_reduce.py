"""Map-reduce: one map step per item (or chunk), item sources, limits on the fan-out, and the reduce step."""

from __future__ import annotations

import uuid

import pytest

from patterns.engine import Engine
from patterns.errors import LimitExceeded
from patterns.limits import Limits
from registry import Registry
from storage import StepRecord, Store

pytestmark = pytest.mark.anyio


async def records(engine: Engine, run_id: str) -> dict[str, StepRecord]:
    return {r.path: r for r in await engine.steps(run_id)}


async def test_one_map_step_runs_per_item_with_item_in_its_context(engine: Engine) -> None:
    tree = {"map_reduce": {"map": {"tool": "double", "input": {"value": {"$": "item"}}}}}
    run = await engine.run(tree, [1, 2, 3])

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": 2}, {"value": 4}, {"value": 6}]
    assert run.usage_steps == 3


async def test_map_steps_are_recorded_at_map_paths_in_item_order(engine: Engine) -> None:
    tree = {"map_reduce": {"map": {"tool": "double", "input": {"value": {"$": "item"}}}}}
    run = await engine.run(tree, [5, 6, 7, 8])

    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "map/0", "map/1", "map/2", "map/3"]
    assert steps[""].kind == "map_reduce"
    for i, item in enumerate([5, 6, 7, 8]):
        assert steps[f"map/{i}"].kind == "tool"
        assert steps[f"map/{i}"].input == {"value": item}
        assert steps[f"map/{i}"].output == {"value": item * 2}


async def test_without_a_template_the_map_step_gets_the_item_itself(engine: Engine) -> None:
    run = await engine.run({"map_reduce": {"map": {"tool": "double"}}}, [{"value": 1}, {"value": 2}])

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": 2}, {"value": 4}]


async def test_map_templates_also_see_the_composite_input_as_input(engine: Engine) -> None:
    tree = {
        "map_reduce": {
            "items": {"$": "input.numbers"},
            "map": {"tool": "add", "input": {"a": {"$": "item"}, "b": {"$": "input.offset"}}},
        }
    }
    run = await engine.run(tree, {"numbers": [1, 2], "offset": 100})

    assert run.status == "succeeded", run.error
    assert run.output == [{"sum": 101}, {"sum": 102}]


async def test_chunk_size_hands_each_map_step_a_list_of_items(engine: Engine) -> None:
    tree = {"map_reduce": {"chunk_size": 2, "map": {"tool": "chunk-sum"}}}
    run = await engine.run(tree, [1, 2, 3, 4, 5])

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": 3}, {"value": 7}, {"value": 5}]
    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "map/0", "map/1", "map/2"]
    assert steps["map/0"].input == [1, 2]
    assert steps["map/2"].input == [5]


async def test_with_chunks_item_in_the_context_is_the_chunk(engine: Engine) -> None:
    tree = {"map_reduce": {"chunk_size": 3, "map": {"tool": "echo", "input": {"chunk": {"$": "item"}}}}}
    run = await engine.run(tree, ["a", "b", "c", "d"])

    assert run.output == [{"chunk": ["a", "b", "c"]}, {"chunk": ["d"]}]


async def test_items_may_be_a_literal_list(engine: Engine) -> None:
    tree = {"map_reduce": {"items": [1, 2, 3], "map": {"tool": "double", "input": {"value": {"$": "item"}}}}}
    run = await engine.run(tree, {"ignored": True})

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": 2}, {"value": 4}, {"value": 6}]


async def test_items_may_be_a_template_over_the_input(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "echo", "id": "source"},
            {
                "map_reduce": {
                    "items": {"$": "steps.source.orders[].amount"},
                    "map": {"tool": "double", "input": {"value": {"$": "item"}}},
                }
            },
        ]
    }
    run = await engine.run(tree, {"orders": [{"amount": 1}, {"amount": 4}]})

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": 2}, {"value": 8}]
    steps = await records(engine, run.id)
    assert {"1/map/0", "1/map/1"} <= set(steps)


async def test_an_empty_list_maps_nothing_and_reduces_an_empty_list(engine: Engine) -> None:
    tree = {"map_reduce": {"map": {"tool": "double"}, "reduce": {"tool": "total"}}}
    run = await engine.run(tree, [])

    assert run.status == "succeeded", run.error
    assert run.output == {"total": 0}
    assert run.usage_steps == 1


async def test_input_that_is_not_a_list_fails_with_invalid_input_naming_the_step(engine: Engine) -> None:
    tree = {"chain": [{"tool": "echo"}, {"map_reduce": {"map": {"tool": "double"}}}]}
    run = await engine.run(tree, {"value": 1})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "invalid_input"
    assert run.error["step"] == "1"
    assert "step 1" in run.error["message"]
    assert "dict" in run.error["message"]
    steps = await records(engine, run.id)
    assert steps["1"].status == "failed"
    assert not any(p.startswith("1/map") for p in steps)


async def test_an_items_template_that_gives_no_list_fails_with_invalid_input(engine: Engine) -> None:
    tree = {"map_reduce": {"items": {"$": "input.missing"}, "map": {"tool": "double"}}}
    run = await engine.run(tree, {"value": 1})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "invalid_input"
    assert run.error["step"] == ""


async def test_too_many_items_at_run_time_fail_with_limit_exceeded_naming_max_fan_out(
    store: Store, registry: Registry
) -> None:
    async with Engine(store, registry, Limits(max_fan_out=3)) as engine:
        tree = {"chain": [{"tool": "echo"}, {"map_reduce": {"items": {"$": "input.xs"}, "map": {"tool": "echo"}}}]}
        run = await engine.run(tree, {"xs": [{}, {}, {}, {}]})
        steps = await records(engine, run.id)

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "limit_exceeded"
    assert run.error["step"] == "1"
    assert "max_fan_out" in run.error["message"]
    assert "3" in run.error["message"]
    assert not any(p.startswith("1/map") for p in steps)


async def test_a_literal_items_list_over_max_fan_out_is_rejected_before_a_run_exists(
    store: Store, registry: Registry
) -> None:
    async with Engine(store, registry, Limits(max_fan_out=3)) as engine:
        tree = {"map_reduce": {"items": [1, 2, 3, 4], "map": {"tool": "double", "input": {"value": {"$": "item"}}}}}
        with pytest.raises(LimitExceeded) as info:
            await engine.run(tree, None)

    assert info.value.type == "limit_exceeded"
    assert info.value.limit == "max_fan_out"
    assert info.value.value == 3
    assert await store.list_runs() == []


async def test_max_fan_out_counts_chunks_not_items(store: Store, registry: Registry) -> None:
    async with Engine(store, registry, Limits(max_fan_out=3)) as engine:
        run = await engine.run({"map_reduce": {"chunk_size": 2, "map": {"tool": "chunk-sum"}}}, [1, 2, 3, 4, 5, 6])

    assert run.status == "succeeded", run.error
    assert run.output == [{"value": 3}, {"value": 7}, {"value": 11}]


async def test_reduce_gets_the_map_results_in_item_order(engine: Engine) -> None:
    tree = {"map_reduce": {"map": {"tool": "double", "input": {"value": {"$": "item"}}}, "reduce": {"tool": "total"}}}
    run = await engine.run(tree, [1, 2, 3])

    assert run.status == "succeeded", run.error
    assert run.output == {"total": 12}
    steps = await records(engine, run.id)
    assert steps["reduce"].input == [{"value": 2}, {"value": 4}, {"value": 6}]
    assert steps["reduce"].kind == "tool"
    assert run.usage_steps == 4


async def test_reduce_templates_see_results_and_the_input(engine: Engine) -> None:
    tree = {
        "map_reduce": {
            "items": {"$": "input.xs"},
            "map": {"tool": "double", "input": {"value": {"$": "item"}}},
            "reduce": {"tool": "echo", "input": {"values": {"$": "results[].value"}, "label": {"$": "input.label"}}},
        }
    }
    run = await engine.run(tree, {"xs": [1, 2], "label": "doubled"})

    assert run.status == "succeeded", run.error
    assert run.output == {"values": [2, 4], "label": "doubled"}


async def test_map_failures_under_best_effort_reach_reduce_as_gaps(engine: Engine) -> None:
    tree = {
        "map_reduce": {
            "strategy": "best_effort",
            "map": {"tool": "double"},
            "reduce": {"tool": "summarize"},
        }
    }
    run = await engine.run(tree, [{"value": 1}, {"wrong": 1}, {"value": 3}])

    assert run.status == "partial"
    assert run.missing == ["map/1"]
    assert run.output == {"count": 3, "present": 2, "missing": 1}


async def test_a_failing_map_step_under_all_fails_the_run_naming_its_path(engine: Engine) -> None:
    tree = {"map_reduce": {"map": {"tool": "double"}, "reduce": {"tool": "total"}}}
    run = await engine.run(tree, [{"value": 1}, {"wrong": 1}])

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["step"] == "map/1"
    steps = await records(engine, run.id)
    assert "reduce" not in steps


async def test_max_concurrency_bounds_map_steps_in_flight(engine: Engine) -> None:
    key = uuid.uuid4().hex
    tree = {
        "map_reduce": {
            "max_concurrency": 2,
            "map": {"tool": "inflight", "input": {"key": key, "seconds": 0.05, "value": {"$": "item"}}},
        }
    }
    run = await engine.run(tree, [1, 2, 3, 4, 5])

    assert run.status == "succeeded", run.error
    assert [r["value"] for r in run.output] == [1, 2, 3, 4, 5]
    assert max(r["peak"] for r in run.output) == 2


async def test_an_item_timeout_turns_a_slow_item_into_a_timeout_failure(engine: Engine) -> None:
    tree = {
        "map_reduce": {
            "strategy": "best_effort",
            "item_timeout_s": 0.1,
            "map": {"tool": "sleepy", "input": {"seconds": {"$": "item"}, "value": {"$": "item"}}},
        }
    }
    run = await engine.run(tree, [0, 1.0, 0])

    assert run.status == "partial"
    assert run.missing == ["map/1"]
    assert run.output == [{"value": 0, "slept": 0}, None, {"value": 0, "slept": 0}]
    steps = await records(engine, run.id)
    assert steps["map/1"].error is not None
    assert steps["map/1"].error["type"] == "timeout"


# --- edge cases of the strategies over a list only known at run time ---------------------------------------------


async def test_best_effort_over_no_items_succeeds_with_an_empty_list(engine: Engine) -> None:
    # `all` over no items succeeds with []; best_effort, which tolerates more, must not do worse
    tree = {"map_reduce": {"strategy": "best_effort", "map": {"tool": "double"}, "reduce": {"tool": "total"}}}
    run = await engine.run(tree, [])

    assert run.status == "succeeded", run.error
    assert run.output == {"total": 0}


async def test_a_quorum_larger_than_the_items_cannot_be_reached_and_fails(engine: Engine) -> None:
    tree = {"map_reduce": {"strategy": "quorum", "quorum": 3, "map": {"tool": "double"}}}
    run = await engine.run(tree, [{"value": 1}, {"value": 2}])

    assert run.status == "failed", run.output
    assert run.error is not None
    assert run.error["step"] == ""
    assert "quorum" in run.error["message"]


async def test_a_quorum_over_no_items_cannot_be_reached_and_fails(engine: Engine) -> None:
    tree = {"map_reduce": {"strategy": "quorum", "quorum": 1, "map": {"tool": "double"}}}
    run = await engine.run(tree, [])

    assert run.status == "failed", run.output
    assert run.error is not None
    assert "quorum" in run.error["message"]
