"""Iterative refinement: the threshold, each hard limit (iterations, improvement, time, cost), the score contract."""

from __future__ import annotations

from typing import Any

import pytest

from patterns.engine import Engine, RunOptions
from patterns.errors import LimitExceeded
from registry import Registry
from storage import StepRecord, Store
from tests.conftest import tool_spec

pytestmark = pytest.mark.anyio


async def records(engine: Engine, run_id: str) -> dict[str, StepRecord]:
    return {r.path: r for r in await engine.steps(run_id)}


def refine(**spec: Any) -> dict[str, Any]:
    """A refine step drafting with `draft` and scoring with `grade` (0.3 per round), overridable field by field."""
    return {"refine": {"generate": {"tool": "draft"}, "evaluate": {"tool": "grade"}, "score": "score", **spec}}


async def test_it_stops_when_the_score_reaches_the_threshold(engine: Engine) -> None:
    run = await engine.run(refine(threshold=0.8, max_iterations=10), {"text": "x"})

    assert run.status == "succeeded", run.error
    out = run.output
    assert out["stop_reason"] == "threshold"
    assert out["reached_threshold"] is True
    assert out["iterations"] == 3
    assert out["iteration"] == 2
    assert out["history"] == pytest.approx([0.3, 0.6, 0.9])
    assert out["score"] == pytest.approx(0.9)
    assert out["output"] == {"text": "x+++", "round": 3}


async def test_a_first_attempt_over_the_threshold_stops_after_one_iteration(engine: Engine) -> None:
    run = await engine.run(refine(threshold=0.1), {"text": "x"})

    assert run.output["stop_reason"] == "threshold"
    assert run.output["iterations"] == 1
    assert run.usage_steps == 2


async def test_generate_gets_the_input_first_and_its_own_last_output_after(engine: Engine) -> None:
    run = await engine.run(refine(threshold=0.5), {"text": "x"})

    steps = await records(engine, run.id)
    assert steps["refine/0/generate"].input == {"text": "x"}
    assert steps["refine/1/generate"].input == {"text": "x+", "round": 1}


async def test_evaluate_gets_the_latest_generated_output(engine: Engine) -> None:
    run = await engine.run(refine(threshold=0.5), {"text": "x"})

    steps = await records(engine, run.id)
    assert steps["refine/0/evaluate"].input == steps["refine/0/generate"].output == {"text": "x+", "round": 1}
    assert steps["refine/1/evaluate"].input == steps["refine/1/generate"].output == {"text": "x++", "round": 2}


async def test_iterations_are_recorded_at_refine_paths(engine: Engine) -> None:
    tree = {"chain": [{"tool": "echo"}, refine(threshold=0.5)]}
    run = await engine.run(tree, {"text": "x"})

    steps = await records(engine, run.id)
    assert sorted(steps) == [
        "",
        "0",
        "1",
        "1/refine/0/evaluate",
        "1/refine/0/generate",
        "1/refine/1/evaluate",
        "1/refine/1/generate",
    ]
    assert steps["1"].kind == "refine"
    assert steps["1"].output == run.output


async def test_it_stops_at_max_iterations_with_the_best_attempt_and_the_score_history(engine: Engine) -> None:
    # scores go up and down: 0.2, 0.7, 0.4; the best attempt is the second
    tree = refine(
        generate={"tool": "draft", "id": "gen"},
        evaluate={"tool": "pick-score", "input": {"round": {"$": "steps.gen.round"}, "scores": [0.2, 0.7, 0.4]}},
        threshold=0.9,
        max_iterations=3,
    )
    run = await engine.run(tree, {"text": "x"})

    assert run.status == "succeeded", run.error
    out = run.output
    assert out["stop_reason"] == "max_iterations"
    assert out["reached_threshold"] is False
    assert out["iterations"] == 3
    assert out["history"] == [0.2, 0.7, 0.4]
    assert out["iteration"] == 1
    assert out["score"] == 0.7
    assert out["output"] == {"text": "x++", "round": 2}
    assert run.usage_steps == 6


async def test_min_improvement_stops_on_a_plateau(engine: Engine) -> None:
    tree = refine(evaluate={"tool": "plateau"}, threshold=0.9, max_iterations=10, min_improvement=0.01)
    run = await engine.run(tree, {"text": "x"})

    assert run.status == "succeeded", run.error
    out = run.output
    assert out["stop_reason"] == "min_improvement"
    assert out["iterations"] == 2
    assert out["history"] == pytest.approx([0.501, 0.502])
    assert out["score"] == pytest.approx(0.502)
    assert out["reached_threshold"] is False


async def test_min_improvement_lets_a_loop_go_on_while_it_improves_enough(engine: Engine) -> None:
    run = await engine.run(refine(threshold=0.95, max_iterations=10, min_improvement=0.2), {"text": "x"})

    # 0.3, 0.6, 0.9 each improve by 0.3; 1.0 reaches the threshold
    assert run.output["stop_reason"] == "threshold"
    assert run.output["iterations"] == 4


async def test_time_budget_stops_with_the_best_attempt_so_far(engine: Engine) -> None:
    # the first evaluation ends at about 0.6 s, the second could not before 1.2 s: the budget of 1 s falls between,
    # with room for a slow machine
    slow_grade = {"chain": [{"tool": "sleepy", "input": {"seconds": 0.6}}, {"tool": "grade", "input": {"$": "input"}}]}
    tree = refine(evaluate=slow_grade, threshold=2, max_iterations=10, time_budget_s=1.0)
    run = await engine.run(tree, {"text": "x"})

    assert run.status == "succeeded", run.error
    out = run.output
    assert out["stop_reason"] == "time_budget"
    assert out["iterations"] == 1
    assert out["history"] == pytest.approx([0.3])
    assert out["output"] == {"text": "x+", "round": 1}
    steps = await records(engine, run.id)
    interrupted = steps["refine/1/evaluate/0"]
    assert interrupted.status not in ("started", "completed")
    assert "refine/1/evaluate/1" not in steps
    assert all(r.status != "started" for r in steps.values())


async def test_a_time_budget_spent_before_any_score_fails_with_timeout(engine: Engine) -> None:
    slow_draft = {"chain": [{"tool": "sleepy", "input": {"seconds": 1.0}}, {"tool": "draft", "input": {"$": "input"}}]}
    run = await engine.run(refine(generate=slow_draft, threshold=2, time_budget_s=0.1), {"text": "x"})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "timeout"
    assert run.error["step"] == ""


async def test_cost_budget_stops_before_an_iteration_that_would_overrun_it(store: Store, registry: Registry) -> None:
    await registry.register_all([tool_spec("draft", "2.0.0", cost=1.0), tool_spec("grade", "2.0.0", cost=0.5)])
    tree = refine(
        generate={"tool": "draft@2.0.0"},
        evaluate={"tool": "grade@2.0.0"},
        threshold=2,
        max_iterations=10,
        cost_budget=4.0,
    )
    async with Engine(store, registry) as engine:
        run = await engine.run(tree, {"text": "x"})

    assert run.status == "succeeded", run.error
    out = run.output
    assert out["stop_reason"] == "cost_budget"
    # each iteration costs 1.5: a third one would bring the spend to 4.5
    assert out["iterations"] == 2
    assert run.usage_cost == pytest.approx(3.0)
    assert out["score"] == pytest.approx(0.6)


async def test_cost_budget_stops_once_it_is_spent(store: Store, registry: Registry) -> None:
    await registry.register_all([tool_spec("draft", "2.0.0", cost=1.0), tool_spec("grade", "2.0.0", cost=0.5)])
    tree = refine(
        generate={"tool": "draft@2.0.0"},
        evaluate={"tool": "grade@2.0.0"},
        threshold=2,
        max_iterations=10,
        cost_budget=3.0,
    )
    async with Engine(store, registry) as engine:
        run = await engine.run(tree, {"text": "x"})

    assert run.output["stop_reason"] == "cost_budget"
    assert run.output["iterations"] == 2
    assert run.usage_cost == pytest.approx(3.0)


async def test_a_score_that_is_not_a_number_is_a_contract_violation(engine: Engine) -> None:
    run = await engine.run(refine(score="text", threshold=0.5), {"text": "x"})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "contract_violation"
    assert run.error["step"] == "refine/0/evaluate"
    assert "'text'" in run.error["message"]


async def test_a_missing_score_is_a_contract_violation(engine: Engine) -> None:
    run = await engine.run(refine(score="quality", threshold=0.5), {"text": "x"})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "contract_violation"


async def test_a_boolean_score_is_not_a_number(engine: Engine) -> None:
    evaluate = {"tool": "echo", "input": {"score": True}}
    run = await engine.run(refine(evaluate=evaluate, threshold=0.5), {"text": "x"})

    assert run.status == "failed"
    assert run.error is not None
    assert run.error["type"] == "contract_violation"


async def test_feedback_is_the_last_evaluation_in_generate_templates(engine: Engine) -> None:
    generate = {
        "tool": "draft",
        "input": {"text": {"$": "input.text"}, "round": {"$": "feedback.round || `0`"}, "note": {"$": "feedback"}},
    }
    run = await engine.run(refine(generate=generate, threshold=0.5), {"text": "x"})

    assert run.status == "succeeded", run.error
    steps = await records(engine, run.id)
    assert steps["refine/0/generate"].input == {"text": "x", "round": 0, "note": None}
    first_evaluation = steps["refine/0/evaluate"].output
    assert first_evaluation == {"score": pytest.approx(0.3), "round": 1, "text": "x+"}
    assert steps["refine/1/generate"].input == {"text": "x", "round": 1, "note": first_evaluation}
    assert run.output["output"] == {"text": "x+", "round": 2}
    assert run.output["score"] == pytest.approx(0.6)


async def test_max_iterations_above_the_server_limit_is_rejected_before_a_run_exists(
    engine: Engine, store: Store
) -> None:
    with pytest.raises(LimitExceeded) as info:
        await engine.run(refine(threshold=0.5, max_iterations=26), {"text": "x"})

    assert info.value.type == "limit_exceeded"
    assert info.value.limit == "max_iterations"
    assert info.value.value == 25
    assert info.value.step == ""
    assert await store.list_runs() == []


async def test_a_caller_may_lower_max_iterations_and_is_held_to_it(engine: Engine, store: Store) -> None:
    lowered = RunOptions(limits={"max_iterations": 2})
    with pytest.raises(LimitExceeded) as info:
        await engine.start(refine(threshold=0.5, max_iterations=3), {"text": "x"}, lowered)
    allowed = await engine.run(refine(threshold=2, max_iterations=2), {"text": "x"}, lowered)

    assert info.value.limit == "max_iterations"
    assert info.value.value == 2
    assert allowed.output["iterations"] == 2
    assert len(await store.list_runs()) == 1


async def test_cost_budget_counts_only_what_the_loop_itself_spends(store: Store, registry: Registry) -> None:
    await registry.register_all(
        [
            tool_spec("draft", "2.0.0", cost=1.0),
            tool_spec("grade", "2.0.0", cost=0.5),
            tool_spec("echo", "2.0.0", cost=10.0),
        ]
    )
    loop = refine(
        generate={"tool": "draft@2.0.0"},
        evaluate={"tool": "grade@2.0.0"},
        threshold=2,
        max_iterations=10,
        cost_budget=3.0,
    )
    # a sibling branch spends 10 while the loop runs; the loop's own budget of 3 allows it two iterations of 1.5
    tree = {"fan_out": {"branches": [loop, {"tool": "echo@2.0.0"}]}}
    async with Engine(store, registry) as engine:
        run = await engine.run(tree, {"text": "x"})

    assert run.status == "succeeded", run.error
    out = run.output[0]
    assert out["stop_reason"] == "cost_budget"
    assert out["iterations"] == 2
    assert run.usage_cost == pytest.approx(13.0)
