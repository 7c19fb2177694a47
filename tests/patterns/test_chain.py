"""Sequential chains: data flow between steps, templates, nesting, and the step records a chain leaves."""

from __future__ import annotations

import pytest

from patterns.engine import Engine
from storage import StepRecord
from tests.conftest import calls

pytestmark = pytest.mark.anyio


async def records(engine: Engine, run_id: str) -> dict[str, StepRecord]:
    return {r.path: r for r in await engine.steps(run_id)}


async def test_each_output_flows_into_the_next_step_without_a_template(engine: Engine) -> None:
    run = await engine.run({"chain": [{"tool": "double"}, {"tool": "double"}, {"tool": "double"}]}, {"value": 1})

    assert run.status == "succeeded"
    assert run.output == {"value": 8}
    assert run.error is None
    assert run.missing == []


async def test_the_first_step_gets_the_chain_input_and_later_steps_the_previous_output(engine: Engine) -> None:
    run = await engine.run({"chain": [{"tool": "add"}, {"tool": "echo"}]}, {"a": 2, "b": 5})

    steps = await records(engine, run.id)
    assert steps["0"].input == {"a": 2, "b": 5}
    assert steps["0"].output == {"sum": 7}
    assert steps["1"].input == {"sum": 7}
    assert run.output == {"sum": 7}


async def test_templates_see_prev_input_step_ids_and_the_run(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "add", "id": "first"},
            {
                "chain": [
                    {"tool": "double", "input": {"value": {"$": "input.sum"}}},
                    {
                        "tool": "echo",
                        "input": {
                            "prev": {"$": "prev"},
                            "input": {"$": "input"},
                            "first": {"$": "steps.first.sum"},
                            "run_id": {"$": "run.id"},
                            "run_input": {"$": "run.input"},
                        },
                    },
                ]
            },
        ]
    }
    run = await engine.run(tree, {"a": 1, "b": 2})

    assert run.status == "succeeded", run.error
    assert run.output == {
        "prev": {"value": 6},
        "input": {"sum": 3},  # the nested chain's input: the outer chain's previous output
        "first": 3,
        "run_id": run.id,
        "run_input": {"a": 1, "b": 2},
    }


async def test_prev_is_null_for_the_first_step_of_a_chain(engine: Engine) -> None:
    run = await engine.run(
        {"chain": [{"tool": "echo", "input": {"prev": {"$": "prev"}, "x": {"$": "input.x"}}}]}, {"x": 1}
    )

    assert run.status == "succeeded"
    assert run.output == {"prev": None, "x": 1}


async def test_a_template_replaces_what_flows_in_for_its_step_only(engine: Engine) -> None:
    tree = {"chain": [{"tool": "add"}, {"tool": "add", "input": {"a": {"$": "prev.sum"}, "b": 10}}, {"tool": "echo"}]}
    run = await engine.run(tree, {"a": 1, "b": 1})

    steps = await records(engine, run.id)
    assert steps["1"].input == {"a": 2, "b": 10}
    assert steps["2"].input == {"sum": 12}
    assert run.output == {"sum": 12}


async def test_nested_chains_run_in_order_and_return_the_last_output(engine: Engine) -> None:
    tree = {"chain": [{"tool": "double"}, {"chain": [{"tool": "double"}, {"chain": [{"tool": "double"}]}]}]}
    run = await engine.run(tree, {"value": 3})

    assert run.status == "succeeded"
    assert run.output == {"value": 24}


async def test_every_node_gets_a_record_at_its_deterministic_path(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "add"},
            {"chain": [{"tool": "double", "input": {"value": {"$": "input.sum"}}}, {"tool": "echo"}]},
        ]
    }
    run = await engine.run(tree, {"a": 1, "b": 2})

    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "0", "1", "1/0", "1/1"]
    assert {p: r.kind for p, r in steps.items()} == {
        "": "chain",
        "0": "tool",
        "1": "chain",
        "1/0": "tool",
        "1/1": "tool",
    }
    assert all(r.status == "completed" for r in steps.values())
    assert all(r.run_id == run.id for r in steps.values())


async def test_the_root_record_holds_the_run_input_and_output(engine: Engine) -> None:
    run = await engine.run({"chain": [{"tool": "add"}, {"tool": "echo"}]}, {"a": 4, "b": 4})

    root = (await records(engine, run.id))[""]
    assert root.kind == "chain"
    assert root.tool is None
    assert root.input == {"a": 4, "b": 4}
    assert root.output == run.output == {"sum": 8}


async def test_tool_records_name_the_tool_version_attempts_and_output(engine: Engine) -> None:
    run = await engine.run(
        {"chain": [{"tool": "add@^1"}, {"tool": "double", "input": {"value": {"$": "prev.sum"}}}]}, {"a": 1, "b": 2}
    )

    steps = await records(engine, run.id)
    add, double = steps["0"], steps["1"]
    assert (add.tool, add.version, add.status) == ("add", "1.0.0", "completed")
    assert (double.tool, double.version, double.status) == ("double", "1.0.0", "completed")
    assert add.output == {"sum": 3}
    assert double.output == {"value": 6}
    assert len(add.attempts) == 1
    assert add.attempts[0]["ok"] is True
    assert add.error is None
    assert add.finished_at is not None
    assert run.lock == {"add@^1": "1.0.0", "double": "1.0.0"}


async def test_usage_steps_counts_tool_steps_not_composites(engine: Engine) -> None:
    tree = {"chain": [{"tool": "double"}, {"chain": [{"tool": "double"}, {"chain": [{"tool": "double"}]}]}]}
    run = await engine.run(tree, {"value": 1})

    steps = await records(engine, run.id)
    assert len(steps) == 6  # three chains and three tools
    assert run.usage_steps == 3


async def test_a_failing_step_stops_the_chain_and_fails_the_run_naming_it(engine: Engine, counter: str) -> None:
    tree = {
        "chain": [
            {"tool": "add"},
            {"tool": "broken", "input": {"reason": "no way"}},
            {"tool": "double", "input": {"value": 1, "counter": counter}},
        ]
    }
    run = await engine.run(tree, {"a": 1, "b": 2})

    assert run.status == "failed"
    assert run.output is None
    assert run.error is not None
    assert run.error["type"] == "tool_failed"
    assert run.error["step"] == "1"
    assert "no way" in run.error["message"]
    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "0", "1"]
    assert steps["0"].status == "completed"
    assert steps["1"].status == "failed"
    assert steps[""].status == "failed"
    assert calls(counter) == 0
    assert run.usage_steps == 2


async def test_a_non_critical_step_leaves_a_gap_and_the_chain_goes_on(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "add"},
            {"tool": "broken", "critical": False},
            {"tool": "echo", "input": {"prev": {"$": "prev"}}},
        ]
    }
    run = await engine.run(tree, {"a": 1, "b": 2})

    assert run.status == "partial"
    assert run.missing == ["1"]
    assert run.output == {"prev": {"sum": 3}}  # the failed step passed on what flowed into it


async def test_the_step_after_a_failed_non_critical_step_gets_the_partial_result_so_far(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "double"},
            {"tool": "broken", "critical": False},  # an enrichment that failed
            {"tool": "double"},
        ]
    }
    run = await engine.run(tree, {"value": 3})

    assert run.status == "partial"
    assert run.missing == ["1"]
    assert run.output == {"value": 12}
    steps = await records(engine, run.id)
    assert steps["2"].input == {"value": 6}


async def test_templates_read_the_gaps_so_far_as_missing(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "broken", "critical": False},
            {"tool": "echo", "input": {"gaps": {"$": "missing"}, "count": {"$": "length(missing)"}}},
        ]
    }
    run = await engine.run(tree, {"a": 1})

    assert run.status == "partial"
    assert run.output == {"gaps": ["0"], "count": 1}


async def test_a_chain_ending_in_a_failed_non_critical_step_outputs_what_flowed_into_it(engine: Engine) -> None:
    run = await engine.run({"chain": [{"tool": "add"}, {"tool": "broken", "critical": False}]}, {"a": 1, "b": 1})

    assert run.status == "partial"
    assert run.output == {"sum": 2}


async def test_a_gap_inside_a_composite_step_does_not_replace_its_output(engine: Engine) -> None:
    tree = {
        "chain": [
            {"fan_out": {"branches": [{"tool": "echo"}, {"tool": "broken", "critical": False}]}},
            {"tool": "echo", "input": {"results": {"$": "prev"}, "gaps": {"$": "missing"}}},
        ]
    }
    run = await engine.run(tree, {"x": 1})

    assert run.status == "partial"
    assert run.output == {"results": [{"x": 1}, None], "gaps": ["0/fan_out/1"]}


async def test_a_failed_non_critical_composite_step_passes_on_its_input(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "add"},
            {
                "chain": [{"tool": "double", "input": {"value": {"$": "prev.sum"}}}, {"tool": "broken"}],
                "critical": False,
            },
            {"tool": "echo"},
        ]
    }
    run = await engine.run(tree, {"a": 2, "b": 3})

    assert run.status == "partial"
    assert run.missing == ["1"]
    assert run.output == {"sum": 5}
