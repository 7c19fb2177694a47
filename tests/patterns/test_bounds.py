"""Bounds the engine keeps whatever it is sent: tree size and shape before parsing, the steps a tree must run,
the bytes a run may store, the tasks nested fan-outs hold, cancellation in proportion to what it cancels, and
recovery of a run that breaks a bound."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

from patterns import Engine, LimitExceeded, Limits, RunOptions
from patterns.bounds import check_tree_bounds
from patterns.errors import InvalidStep, PatternError
from patterns.state import LiveRecords
from patterns.steps import parse_step
from patterns.validate import fewest_tool_steps
from registry import Registry
from storage import NewRun, StepWrite, Store

pytestmark = pytest.mark.anyio


def write(path: str) -> StepWrite:
    return StepWrite("run", path, "tool", "started", 0.0)


def test_live_records_are_found_by_path_prefix_at_segment_boundaries() -> None:
    live = LiveRecords()
    for path in ("", "0", "0/fan_out/1", "0/fan_out/10", "0/fan_out/10/map/3", "1", "2/refine/0/generate"):
        live.put(path, write(path))
    assert sorted(live.under("0/fan_out/1")) == ["0/fan_out/1"]  # not 0/fan_out/10
    assert sorted(live.under("0/fan_out/10")) == ["0/fan_out/10", "0/fan_out/10/map/3"]
    assert sorted(live.under("2/refine/0")) == ["2/refine/0/generate"]  # a prefix that is no record of its own
    assert len(live.under("")) == 7
    live.pop("0/fan_out/10")
    assert live.under("0/fan_out/10") == ["0/fan_out/10/map/3"]
    live.pop("0/fan_out/10/map/3")
    assert live.under("0/fan_out/10") == [] and "0/fan_out/10" not in live
    assert sorted(live.under("0")) == ["0", "0/fan_out/1"]


def test_finding_a_subtree_costs_what_the_subtree_holds() -> None:
    live = LiveRecords()
    for i in range(20_000):
        live.put(f"fan_out/{i}/fan_out/{i % 7}", write(""))
    started = time.perf_counter()
    for i in range(20_000):  # every worker of a failing fan-out finishes its own subtree
        assert len(live.under(f"fan_out/{i}")) == 1
    # not a timing assertion on the machine: 20,000 lookups that each scanned 20,000 records would take minutes
    assert time.perf_counter() - started < 60
    assert len(live) == 20_000


@pytest.mark.parametrize(
    ("tree", "limit"),
    [
        pytest.param({"chain": [{"tool": "noop"}] * 30}, "max_tree_nodes", id="too-many-steps"),
        pytest.param({"fan_out": {"branches": [{"tool": "noop"}] * 11}}, "max_fan_out", id="too-wide"),
        pytest.param(
            {"route": {"on": "x", "cases": {str(i): {"tool": "noop"} for i in range(11)}}},
            "max_fan_out",
            id="too-many-cases",
        ),  # fmt: skip
        pytest.param(
            {"map_reduce": {"items": list(range(11)), "map": {"tool": "noop"}}}, "max_fan_out", id="too-many-items"
        ),  # fmt: skip
        pytest.param({"tool": "noop", "input": [[[[[[1]]]]]]}, "max_payload_depth", id="deep-template"),
    ],
)
def test_a_raw_tree_past_a_bound_is_refused_before_it_is_parsed(tree: dict[str, Any], limit: str) -> None:
    limits = Limits(max_tree_nodes=20, max_fan_out=10, max_payload_depth=5)
    with pytest.raises(LimitExceeded) as raised:
        check_tree_bounds(tree, limits)
    assert raised.value.limit == limit


def test_a_tree_nested_thousands_deep_is_refused_without_recursing() -> None:
    tree: dict[str, Any] = {"tool": "noop"}
    for _ in range(5_000):
        tree = {"chain": [tree]}
    with pytest.raises(LimitExceeded) as raised:
        check_tree_bounds(tree, Limits())
    assert raised.value.limit == "max_depth"


def test_nan_in_a_template_is_invalid_input() -> None:
    with pytest.raises(InvalidStep) as raised:
        check_tree_bounds({"chain": [{"tool": "noop", "input": {"v": float("nan")}}]}, Limits())
    assert "step 0: input" in raised.value.message and "NaN or an infinity" in raised.value.message


@pytest.mark.parametrize(
    ("tree", "fewest"),
    [
        ({"chain": [{"tool": "a"}, {"fan_out": {"branches": [{"tool": "b"}] * 3, "reduce": {"tool": "c"}}}]}, 5),
        (
            {
                "fan_out": {
                    "branches": [{"chain": [{"tool": "a"}] * 4}, {"tool": "b"}, {"tool": "c"}],
                    "strategy": "quorum",
                    "quorum": 2,
                }
            },
            2,
        ),  # fmt: skip
        ({"map_reduce": {"items": [1, 2, 3, 4, 5], "chunk_size": 2, "map": {"chain": [{"tool": "a"}] * 2}}}, 6),
        ({"map_reduce": {"map": {"tool": "a"}, "reduce": {"tool": "b"}}}, 1),  # items known only at run time
        ({"route": {"on": "x", "cases": {"a": {"chain": [{"tool": "a"}] * 3}}, "default": {"tool": "b"}}}, 1),
        ({"refine": {"generate": {"tool": "g"}, "evaluate": {"tool": "e"}, "score": "s", "threshold": 1}}, 2),
        ({"gate": {"title": "t"}}, 0),
    ],
)
def test_the_fewest_tool_steps_a_tree_takes(tree: dict[str, Any], fewest: int) -> None:
    assert fewest_tool_steps(parse_step(tree)) == fewest


async def test_a_run_that_stores_too_many_bytes_fails_naming_the_limit(store: Store, registry: Registry) -> None:
    step = {"fan_out": {"branches": [{"tool": "blob", "input": {"size": 100_000}}] * 20, "max_concurrency": 1}}
    async with Engine(store, registry, Limits(max_run_bytes=500_000)) as engine:
        run = await engine.run(step)
        records = await engine.steps(run.id)
    assert run.status == "failed" and run.error is not None
    assert run.error["type"] == "limit_exceeded" and "max_run_bytes=500000" in run.error["message"]
    stored = sum(len(r.output_json or "") for r in records)
    assert stored <= 500_000  # what would have passed the limit was not stored
    assert sum(r.status == "completed" for r in records if r.kind == "tool") == 4


async def test_nested_fan_outs_share_a_pool_of_workers(store: Store, registry: Registry) -> None:
    # items known only at run time, three levels deep: 1,000 calls; each fan-out alone could use 8 workers
    leaf = {"tool": "inflight", "input": {"key": "nested-pool", "seconds": 0.01}}
    level3 = {"map_reduce": {"map": leaf, "items": {"$": "item"}}}
    level2 = {"map_reduce": {"map": level3, "items": {"$": "item"}}}
    step = {"map_reduce": {"map": level2}}
    items = [[[0] * 10] * 10] * 10
    baseline = len(asyncio.all_tasks())
    peak = 0
    async with Engine(store, registry, Limits(max_concurrency=8)) as engine:
        started = await engine.start(step, items)
        while engine.is_active(started.id):
            peak = max(peak, len(asyncio.all_tasks()) - baseline)
            await anyio.sleep(0.002)
        run = await engine.wait(started.id)
    assert run.status == "succeeded" and run.usage_steps == 1000
    # 8 workers per fan-out would be 8 * 8 * 8 = 512 tasks; the shared pool keeps them to a few dozen
    assert peak <= 8 * 4 + 10, peak


async def test_a_stored_run_that_breaks_a_bound_is_failed_when_recovered_not_retried(
    store: Store, registry: Registry
) -> None:
    # a run stored before its tree's bound existed (here: a tree over the max_tree_nodes it was stored with)
    tree = {"chain": [{"tool": "noop"}] * 50}
    await store.create_run(
        NewRun(
            id="old-bomb", step=tree, input={}, lock={"noop": "1.0.0"},
            limits=Limits(max_tree_nodes=10).model_dump(mode="json"), trace_id="t", status="running",
            lease_owner="a-dead-replica", lease_expires_at=time.time() - 60,
        )
    )  # fmt: skip
    async with Engine(store, registry, lease_s=0.5) as engine:
        with anyio.fail_after(20):
            while (record := await engine.get("old-bomb")).status == "running":
                await anyio.sleep(0.05)
        fresh = await engine.run({"tool": "noop"}, {})  # the engine goes on serving
    assert record.status == "failed" and record.error is not None
    assert "cannot be resumed" in record.error["message"] and "max_tree_nodes=10" in record.error["message"]
    assert fresh.status == "succeeded"


async def test_a_template_that_multiplies_its_input_is_measured_before_it_is_encoded(
    store: Store, registry: Registry
) -> None:
    step = {"tool": "echo", "input": {"v": {"$": "[input, input, input]"}}}
    async with Engine(store, registry, Limits(max_payload_bytes=1_000)) as engine:
        run = await engine.run(step, "x" * 400)
    assert run.status == "failed" and run.error is not None
    assert "max_payload_bytes=1000" in run.error["message"] and "at least" in run.error["message"]


async def test_an_expression_error_names_the_step_and_the_expression(store: Store, registry: Registry) -> None:
    step = {"chain": [{"tool": "noop"}, {"tool": "echo", "input": {"v": {"$": "sort_by(input, &a)"}}}]}
    async with Engine(store, registry) as engine:
        run = await engine.run(step, {"a": 1})
    assert run.error is not None and run.error["type"] == "invalid_input" and run.error["step"] == "1"
    assert "step 1: input: JMESPath 'sort_by(input, &a)'" in run.error["message"]


async def test_limits_are_numbers_json_can_carry(engine: Engine) -> None:
    with pytest.raises(PatternError) as raised:
        engine.effective_limits(RunOptions(deadline_s=float("nan")))
    assert raised.value.type == "invalid_input"
