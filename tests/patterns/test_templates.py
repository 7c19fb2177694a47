"""Input templates: where references may sit, what passes through literally, and the checks made before a run starts."""

from __future__ import annotations

from typing import Any

import pytest

from patterns.engine import Engine
from patterns.errors import InvalidStep, PatternError
from storage import Store

pytestmark = pytest.mark.anyio


async def test_references_nested_in_dicts_and_lists_are_evaluated(engine: Engine) -> None:
    template = {
        "order": {"id": {"$": "input.id"}, "lines": [{"$": "input.items[0]"}, {"sku": {"$": "input.items[1].sku"}}]},
        "who": [[{"$": "run.input.user"}]],
    }
    run = await engine.run(
        {"tool": "echo", "input": template}, {"id": 7, "user": "ana", "items": [{"sku": "a"}, {"sku": "b"}]}
    )

    assert run.status == "succeeded", run.error
    assert run.output == {"order": {"id": 7, "lines": [{"sku": "a"}, {"sku": "b"}]}, "who": [["ana"]]}


async def test_literal_values_pass_through_unchanged(engine: Engine) -> None:
    literal = {
        "text": "input.id",
        "number": 1.5,
        "flag": False,
        "nothing": None,
        "list": [1, "two", {"three": 3}],
        "dollar": "$",
        "not_a_ref": {"$": "input.id", "other": 1},
    }
    run = await engine.run({"tool": "echo", "input": literal}, {"id": 7})

    assert run.status == "succeeded", run.error
    assert run.output == literal


async def test_literals_and_references_mix_in_one_template(engine: Engine) -> None:
    run = await engine.run({"tool": "add", "input": {"a": {"$": "input.n"}, "b": 10}}, {"n": 5})

    assert run.output == {"sum": 15}


async def test_a_template_that_is_a_single_reference_replaces_the_whole_input(engine: Engine) -> None:
    run = await engine.run({"tool": "echo", "input": {"$": "input.inner"}}, {"inner": {"k": "v"}, "outer": 1})

    assert run.output == {"k": "v"}


async def test_a_reference_to_a_missing_field_gives_null(engine: Engine) -> None:
    run = await engine.run({"tool": "echo", "input": {"x": {"$": "input.nowhere.deeper"}}}, {"id": 1})

    assert run.status == "succeeded", run.error
    assert run.output == {"x": None}


async def test_jmespath_functions_and_projections_work_in_templates(engine: Engine) -> None:
    template = {
        "count": {"$": "length(input.xs)"},
        "names": {"$": "input.xs[].name"},
        "up": {"$": "input.xs[?n > `1`]"},
    }
    run = await engine.run({"tool": "echo", "input": template}, {"xs": [{"name": "a", "n": 1}, {"name": "b", "n": 2}]})

    assert run.output == {"count": 2, "names": ["a", "b"], "up": [{"name": "b", "n": 2}]}


async def test_a_literal_template_without_references_ignores_what_flows_in(engine: Engine) -> None:
    run = await engine.run({"chain": [{"tool": "add"}, {"tool": "double", "input": {"value": 4}}]}, {"a": 1, "b": 2})

    assert run.output == {"value": 8}


# --- checks before a run starts ----------------------------------------------------------------------------------


async def rejected(engine: Engine, store: Store, tree: Any, error: type[PatternError] = InvalidStep) -> PatternError:
    """Start ``tree`` expecting ``error`` at start, and check no run was created."""
    with pytest.raises(error) as info:
        await engine.run(tree, {"a": 1, "b": 2})
    with pytest.raises(error):
        await engine.start(tree, {"a": 1, "b": 2})
    assert await store.list_runs() == []
    return info.value


async def test_invalid_jmespath_is_rejected_at_start_naming_the_step(engine: Engine, store: Store) -> None:
    tree = {"chain": [{"tool": "add"}, {"tool": "double", "input": {"value": {"$": "prev.[sum"}}}]}
    error = await rejected(engine, store, tree)

    assert error.type == "invalid_input"
    assert error.step == "1"
    assert "step 1" in error.message
    assert "prev.[sum" in error.message


async def test_invalid_jmespath_deep_inside_a_template_names_the_step(engine: Engine, store: Store) -> None:
    bad = {"fan_out": {"branches": [{"tool": "echo"}, {"tool": "echo", "input": {"a": [{"b": {"$": "input..x"}}]}}]}}
    error = await rejected(engine, store, {"chain": [{"tool": "echo"}, bad]})

    assert error.step == "1/fan_out/1"
    assert "1/fan_out/1" in error.message


@pytest.mark.parametrize(
    ("tree", "path"),
    [
        ({"route": {"on": "input.[", "cases": {"a": {"tool": "echo"}}}}, ""),
        (
            {
                "chain": [
                    {"tool": "echo"},
                    {
                        "refine": {
                            "generate": {"tool": "draft"},
                            "evaluate": {"tool": "grade"},
                            "score": "score[",
                            "threshold": 1,
                        }
                    },
                ]
            },
            "1",
        ),
        ({"map_reduce": {"items": {"$": "input.xs["}, "map": {"tool": "echo"}}}, ""),
        ({"map_reduce": {"map": {"tool": "echo", "input": {"v": {"$": "item)"}}}}}, "map/*"),
    ],
    ids=["route-on", "refine-score", "map-items", "map-step"],
)
async def test_invalid_expressions_anywhere_in_the_tree_are_rejected_at_start(
    engine: Engine, store: Store, tree: Any, path: str
) -> None:
    error = await rejected(engine, store, tree)

    assert error.type == "invalid_input"
    assert error.step == path


async def test_a_reference_that_is_not_a_string_is_rejected_at_start(engine: Engine, store: Store) -> None:
    error = await rejected(engine, store, {"tool": "echo", "input": {"x": {"$": 5}}})

    assert error.type == "invalid_input"
    assert error.step == ""


async def test_a_reference_to_an_unknown_step_id_is_rejected_listing_the_known_ids(
    engine: Engine, store: Store
) -> None:
    tree = {
        "chain": [
            {"tool": "add", "id": "first"},
            {"tool": "double", "id": "second", "input": {"value": {"$": "prev.sum"}}},
            {"tool": "double", "input": {"value": {"$": "steps.nope.sum"}}},
        ]
    }
    error = await rejected(engine, store, tree)

    assert error.type == "invalid_input"
    assert error.step == "2"
    assert "nope" in error.message
    assert "first" in error.message
    assert "second" in error.message


async def test_an_unknown_step_id_without_any_ids_says_so(engine: Engine, store: Store) -> None:
    error = await rejected(engine, store, {"chain": [{"tool": "echo", "input": {"x": {"$": "steps.ghost"}}}]})

    assert error.step == "0"
    assert "ghost" in error.message
    assert "no step has an id" in error.message


async def test_an_unknown_step_id_inside_an_items_template_is_rejected(engine: Engine, store: Store) -> None:
    tree = {
        "chain": [
            {"tool": "echo", "id": "src"},
            {"map_reduce": {"items": {"$": "steps.srcs.xs"}, "map": {"tool": "echo"}}},
        ]
    }
    error = await rejected(engine, store, tree)

    assert error.step == "1"
    assert "srcs" in error.message
    assert "src" in error.message


async def test_steps_may_refer_to_a_step_id_defined_in_another_branch_of_the_tree(engine: Engine) -> None:
    tree = {
        "chain": [
            {"fan_out": {"branches": [{"tool": "add", "id": "sum"}, {"tool": "noop"}]}},
            {"tool": "double", "input": {"value": {"$": "steps.sum.sum"}}},
        ]
    }
    run = await engine.run(tree, {"a": 2, "b": 3})

    assert run.status == "succeeded", run.error
    assert run.output == {"value": 10}


async def test_duplicate_step_ids_are_rejected_naming_both_steps(engine: Engine, store: Store) -> None:
    tree = {"chain": [{"tool": "add", "id": "x"}, {"chain": [{"tool": "echo"}, {"tool": "echo", "id": "x"}]}]}
    error = await rejected(engine, store, tree)

    assert error.type == "invalid_input"
    assert error.step == "1/1"
    assert "'x'" in error.message
    assert "step 0" in error.message


async def test_a_malformed_step_id_is_rejected_at_start(engine: Engine, store: Store) -> None:
    error = await rejected(engine, store, {"chain": [{"tool": "echo", "id": "has space"}]})

    assert error.type == "invalid_input"
    assert "id" in error.message
