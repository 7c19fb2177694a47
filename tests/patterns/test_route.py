"""Conditional routing: string and non-string case keys, the default, no match, and the chosen case's record."""

from __future__ import annotations

from typing import Any

import pytest

from patterns.engine import Engine
from storage import StepRecord

pytestmark = pytest.mark.anyio


async def records(engine: Engine, run_id: str) -> dict[str, StepRecord]:
    return {r.path: r for r in await engine.steps(run_id)}


def team(name: str) -> dict[str, Any]:
    return {"tool": "echo", "input": {"team": name, "text": {"$": "input.text"}}}


TRIAGE: dict[str, Any] = {
    "chain": [
        {"tool": "classify"},
        {"route": {"on": "input.category", "cases": {"billing": team("billing"), "outage": team("sre")}}},
    ]
}


async def test_a_string_value_runs_the_case_with_that_name(engine: Engine) -> None:
    run = await engine.run(TRIAGE, {"text": "Please refund my invoice"})

    assert run.status == "succeeded", run.error
    assert run.output == {"team": "billing", "text": "Please refund my invoice"}


async def test_only_the_chosen_case_runs_and_is_recorded_at_its_case_path(engine: Engine) -> None:
    run = await engine.run(TRIAGE, {"text": "the site is down"})

    assert run.output == {"team": "sre", "text": "the site is down"}
    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "0", "1", "1/route/case=outage"]
    assert steps["1"].kind == "route"
    assert steps["1/route/case=outage"].tool == "echo"
    assert steps["1/route/case=outage"].status == "completed"
    assert run.usage_steps == 2


async def test_the_chosen_case_gets_the_route_input_when_it_has_no_template(engine: Engine) -> None:
    tree = {"route": {"on": "input.kind", "cases": {"a": {"tool": "echo"}, "b": {"tool": "noop"}}}}
    run = await engine.run(tree, {"kind": "a", "payload": [1, 2]})

    assert run.status == "succeeded", run.error
    assert run.output == {"kind": "a", "payload": [1, 2]}
    steps = await records(engine, run.id)
    assert steps["route/case=a"].input == {"kind": "a", "payload": [1, 2]}


@pytest.mark.parametrize(
    ("value", "case"),
    [(True, "true"), (False, "false"), (3, "3"), (None, "null"), ([1, 2], "[1,2]")],
)
async def test_a_non_string_value_selects_the_case_named_by_its_json_text(
    engine: Engine, value: Any, case: str
) -> None:
    cases = {key: {"tool": "echo", "input": {"case": key}} for key in ("true", "false", "3", "null", "[1,2]")}
    run = await engine.run({"route": {"on": "input.v", "cases": cases}}, {"v": value})

    assert run.status == "succeeded", run.error
    assert run.output == {"case": case}
    steps = await records(engine, run.id)
    assert f"route/case={case}" in steps


async def test_a_number_does_not_match_a_case_spelled_as_a_string_of_another_form(engine: Engine) -> None:
    cases = {"3.0": {"tool": "echo", "input": {"case": "3.0"}}}
    tree = {"route": {"on": "input.v", "cases": cases, "default": {"tool": "echo", "input": {"case": "default"}}}}
    run = await engine.run(tree, {"v": 3})

    assert run.output == {"case": "default"}


async def test_a_string_true_and_a_boolean_true_choose_the_same_case(engine: Engine) -> None:
    tree = {"route": {"on": "input.v", "cases": {"true": {"tool": "echo", "input": {"hit": True}}}}}
    as_bool = await engine.run(tree, {"v": True})
    as_text = await engine.run(tree, {"v": "true"})

    assert as_bool.output == as_text.output == {"hit": True}


async def test_without_a_match_the_default_runs_at_the_default_path(engine: Engine) -> None:
    tree = {
        "route": {
            "on": "input.category",
            "cases": {"billing": team("billing")},
            "default": team("front-desk"),
        }
    }
    run = await engine.run(tree, {"category": "question", "text": "hello"})

    assert run.status == "succeeded", run.error
    assert run.output == {"team": "front-desk", "text": "hello"}
    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "route/default"]
    assert steps["route/default"].status == "completed"


async def test_no_match_and_no_default_fails_with_invalid_input_listing_the_cases(engine: Engine) -> None:
    run = await engine.run(TRIAGE, {"text": "just saying hello"})

    assert run.status == "failed"
    assert run.output is None
    assert run.error is not None
    assert run.error["type"] == "invalid_input"
    assert run.error["step"] == "1"
    message = run.error["message"]
    assert "'other'" in message
    assert "'billing'" in message
    assert "'outage'" in message
    assert "default" in message
    steps = await records(engine, run.id)
    assert steps["1"].status == "failed"
    assert not any(p.startswith("1/route") for p in steps)


async def test_on_can_look_at_earlier_steps_by_id(engine: Engine) -> None:
    tree = {
        "chain": [
            {"tool": "classify", "id": "triage"},
            {"tool": "noop"},
            {
                "route": {
                    "on": "steps.triage.category",
                    "cases": {"billing": {"tool": "echo", "input": {"routed": {"$": "steps.triage.text"}}}},
                }
            },
        ]
    }
    run = await engine.run(tree, {"text": "a charge I do not know"})

    assert run.status == "succeeded", run.error
    assert run.output == {"routed": "a charge I do not know"}


async def test_a_case_name_with_a_slash_is_escaped_in_its_path(engine: Engine) -> None:
    tree = {"route": {"on": "input.kind", "cases": {"a/b": {"tool": "echo"}, "50%": {"tool": "echo"}}}}
    slash = await engine.run(tree, {"kind": "a/b"})
    percent = await engine.run(tree, {"kind": "50%"})

    assert "route/case=a%2Fb" in await records(engine, slash.id)
    assert "route/case=50%25" in await records(engine, percent.id)


async def test_a_composite_case_nests_its_records_under_the_case_path(engine: Engine) -> None:
    pair = {"chain": [{"tool": "double", "input": {"value": {"$": "input.value"}}}, {"tool": "double"}]}
    run = await engine.run({"route": {"on": "input.kind", "cases": {"pair": pair}}}, {"kind": "pair", "value": 1})

    assert run.status == "succeeded", run.error
    assert run.output == {"value": 4}
    steps = await records(engine, run.id)
    assert sorted(steps) == ["", "route/case=pair", "route/case=pair/0", "route/case=pair/1"]
    assert steps["route/case=pair"].kind == "chain"


async def test_a_failing_non_critical_case_leaves_a_gap_named_by_the_case_path(engine: Engine) -> None:
    tree = {"route": {"on": "input.kind", "cases": {"x": {"tool": "broken", "critical": False}}}}
    run = await engine.run(tree, {"kind": "x"})

    assert run.status == "partial"
    assert run.missing == ["route/case=x"]
    assert run.output is None
