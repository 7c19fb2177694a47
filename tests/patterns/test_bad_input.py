"""Bad input is refused with a specific error that says where and what is wrong, and changes nothing stored."""

from typing import Any

import pytest
from pydantic import ValidationError

from patterns.engine import Engine, RunOptions
from patterns.errors import InvalidStep, PatternError, UnknownTool
from registry import InvalidToolSpec, ToolConflict, ToolSpec
from storage import RunRecord, Store, StoredTool
from tests.conftest import TEST_TOOLS, tool_spec

pytestmark = pytest.mark.anyio

KINDS = "tool, chain, fan_out, map_reduce, route, refine"


async def snapshot(store: Store) -> tuple[list[RunRecord], list[StoredTool]]:
    return await store.list_runs(limit=1000), await store.tools.all()


async def refused(
    engine: Engine,
    store: Store,
    step: Any,
    error: type[PatternError] = InvalidStep,
    options: RunOptions | None = None,
) -> PatternError:
    """Start ``step``; expect ``error``; check that no run and no tool was added or changed. Returns the error."""
    before = await snapshot(store)
    with pytest.raises(error) as raised:
        await engine.start(step, {"a": 1, "b": 2}, options)
    assert isinstance(raised.value, PatternError)
    assert await snapshot(store) == before
    return raised.value


def in_chain(bad: Any) -> dict[str, Any]:
    return {"chain": [{"tool": "add"}, bad]}


@pytest.mark.parametrize(
    ("bad", "fragments"),
    [
        pytest.param(42, ["chain[1]", "expected a step object, got int", KINDS], id="not-an-object"),
        pytest.param("add", ["chain[1]", "expected a step object, got str"], id="a-bare-string"),
        pytest.param({"gate": {}}, ["chain[1].gate.title", "Field required"], id="gate-without-a-title"),
        pytest.param(
            {"workflow": "x@1", "budget": {"max_steps": 0}},
            ["chain[1].budget.max_steps", "greater than or equal to 1"],
            id="child-budget-below-one",
        ),
        pytest.param({"toll": "x"}, ["chain[1]", "unknown step kind", "toll"], id="misspelt-kind"),
        pytest.param({}, ["chain[1]", "unknown step kind", "none"], id="empty-object"),
        pytest.param(
            {"tool": "add", "chain": [{"tool": "add"}]}, ["chain[1]", "one kind", "chain", "tool"], id="two-kinds"
        ),
        pytest.param({"tool": "add", "colour": "red"}, ["chain[1].colour", "Extra inputs"], id="extra-key"),
        pytest.param({"tool": "add", "timeout_s": "soon"}, ["chain[1].timeout_s", "valid number"], id="bad-timeout"),
        pytest.param({"tool": "add", "timeout_s": -1}, ["chain[1].timeout_s", "greater than 0"], id="negative-timeout"),
        pytest.param({"tool": "add", "critical": "maybe"}, ["chain[1].critical", "boolean"], id="bad-critical"),
        pytest.param({"tool": 5}, ["chain[1].tool", "valid string"], id="tool-not-a-string"),
        pytest.param({"chain": "add"}, ["chain[1].chain", "valid list"], id="chain-not-a-list"),
        pytest.param({"chain": []}, ["chain[1].chain", "at least 1"], id="empty-chain"),
        pytest.param(
            {"tool": "add", "retry": {"max_attempts": 0}},
            ["chain[1].retry.max_attempts", "greater than or equal to 1"],
            id="bad-retry",
        ),
        pytest.param(
            {"tool": "add", "retry": {"attempts": 3}},
            ["chain[1].retry.attempts", "Extra inputs"],
            id="unknown-retry-key",
        ),
        pytest.param(
            {"fan_out": {"branches": [{"tool": "add"}, {"tool": "add"}], "strategy": "quorum"}},
            ["chain[1].fan_out", "quorum", "needs `quorum`"],
            id="quorum-without-quorum",
        ),
        pytest.param(
            {"fan_out": {"branches": [{"tool": "add"}, {"tool": "add"}], "strategy": "quorum", "quorum": 3}},
            ["chain[1].fan_out", "quorum 3", "2 branches"],
            id="quorum-above-branches",
        ),
        pytest.param(
            {"fan_out": {"branches": [{"tool": "add"}], "strategy": "sometimes"}},
            ["chain[1].fan_out.strategy", "'all'", "'best_effort'", "'quorum'"],
            id="unknown-strategy",
        ),
        pytest.param(
            {"fan_out": {"branches": [{"tool": "add"}, {"toll": "x"}]}},
            ["chain[1].fan_out.branches[1]", "unknown step kind", "toll"],
            id="nested-bad-branch",
        ),
    ],
)
async def test_a_malformed_step_is_refused_with_its_location_and_what_is_wrong(engine, store, bad, fragments):
    error = await refused(engine, store, in_chain(bad))

    assert error.type == "invalid_input"
    for fragment in fragments:
        assert fragment in error.message


async def test_a_step_tree_that_is_not_an_object_is_refused_at_the_root(engine, store):
    error = await refused(engine, store, [{"tool": "add"}])

    assert "(root)" in error.message
    assert "expected a step object, got list" in error.message


async def test_every_problem_in_a_step_tree_is_named(engine, store):
    error = await refused(engine, store, {"chain": [{"tool": "add", "colour": "red"}, {"toll": "x"}]})

    assert "chain[0].colour" in error.message
    assert "chain[1]" in error.message
    assert "toll" in error.message


async def test_a_bad_template_expression_names_the_step(engine, store):
    error = await refused(engine, store, in_chain({"tool": "add", "input": {"a": {"$": "prev.["}, "b": 1}}))

    assert error.step == "1"
    assert "step 1" in error.message
    assert "prev.[" in error.message


async def test_a_template_referring_to_an_unknown_step_id_names_it(engine, store):
    step = {"chain": [{"tool": "add", "id": "first"}, {"tool": "double", "input": {"value": {"$": "steps.frist.sum"}}}]}

    error = await refused(engine, store, step)

    assert error.step == "1"
    assert "frist" in error.message
    assert "first" in error.message


async def test_a_duplicate_step_id_is_refused(engine, store):
    step = {"chain": [{"tool": "add", "id": "x"}, {"tool": "add", "id": "x"}]}

    error = await refused(engine, store, step)

    assert error.step == "1"
    assert "'x'" in error.message
    assert "already used by step 0" in error.message


async def test_an_unknown_tool_suggests_close_names_not_the_whole_registry(engine, store):
    error = await refused(engine, store, in_chain({"tool": "ad"}), UnknownTool)

    assert error.type == "unknown_tool"
    assert "'ad'" in error.message
    assert "did you mean 'add'" in error.message
    for name in ("double", "echo", "sleepy"):
        assert name not in error.message

    contained = await refused(engine, store, in_chain({"tool": "sleep"}), UnknownTool)
    assert "did you mean 'sleepy' or 'blocking-sleep'?" in contained.message

    unlike = await refused(engine, store, in_chain({"tool": "zzz"}), UnknownTool)
    assert unlike.message.endswith(
        f"unknown tool 'zzz'; {len(TEST_TOOLS)} tool(s) are registered: find_tools or `podium tools list` lists them"
    )


async def test_an_unknown_tool_error_names_the_step_that_refers_to_it(engine, store):
    error = await refused(engine, store, in_chain({"tool": "ad"}), UnknownTool)

    assert error.step == "1"


async def test_an_unknown_fallback_is_refused_before_the_run_is_created(engine, store):
    error = await refused(engine, store, {"tool": "add", "fallback": "ech"}, UnknownTool)

    assert "did you mean 'echo'" in error.message


async def test_an_unsatisfiable_version_range_lists_the_versions_that_exist(engine, registry, store):
    await registry.register(tool_spec("add", "1.4.0"))

    error = await refused(engine, store, in_chain({"tool": "add@^2"}), UnknownTool)

    assert error.type == "unknown_tool"
    assert "'add'" in error.message
    assert "^2" in error.message
    assert "1.4.0, 1.0.0" in error.message


async def test_a_malformed_reference_is_invalid_input_naming_the_step(engine, store):
    error = await refused(engine, store, in_chain({"tool": "add@^^1"}))

    assert error.type == "invalid_input"
    assert error.step == "1"
    assert "step 1" in error.message
    assert "add@^^1" in error.message
    assert "not a valid tool reference" in error.message


async def test_a_malformed_tool_name_is_invalid_input(engine, store):
    error = await refused(engine, store, in_chain({"tool": "no spaces allowed"}))

    assert error.step == "1"
    assert "not a valid tool reference" in error.message


async def test_caller_limits_that_are_not_limits_are_invalid_input(engine, store):
    error = await refused(engine, store, {"tool": "add"}, options=RunOptions(limits={"max_stepz": 3}))
    assert "max_stepz" in error.message

    error = await refused(engine, store, {"tool": "add"}, options=RunOptions(limits={"max_steps": 0}))
    assert "max_steps" in error.message


async def test_a_tool_whose_input_schema_is_not_json_schema_cannot_be_defined(registry, store):
    before = await store.tools.all()

    with pytest.raises((ValidationError, InvalidToolSpec)) as raised:
        await registry.register(tool_spec("add", "7.0.0", input_schema={"type": "nope"}))

    assert "input_schema" in str(raised.value)
    assert "not a valid JSON Schema" in str(raised.value)
    assert await store.tools.all() == before


async def test_a_tool_whose_output_schema_is_not_json_schema_cannot_be_defined(registry, store):
    before = await store.tools.all()

    with pytest.raises((ValidationError, InvalidToolSpec)) as raised:
        await registry.register(tool_spec("add", "7.0.0", output_schema={"type": "object", "required": "sum"}))

    assert "output_schema" in str(raised.value)
    assert await store.tools.all() == before


async def test_a_tool_whose_provider_cannot_be_loaded_is_not_registered(registry, store):
    before = await store.tools.all()
    spec = ToolSpec(name="ghost", version="1.0.0", provider={"type": "python", "target": "tests.tools:no_such_tool"})

    with pytest.raises(InvalidToolSpec) as raised:
        await registry.register(spec)

    assert "no_such_tool" in raised.value.message
    assert await store.tools.all() == before


async def test_re_registering_a_version_with_another_definition_is_a_conflict_naming_the_fields(registry, store):
    stored = await store.tools.get("add", "1.0.0")
    before = await store.tools.all()

    with pytest.raises(ToolConflict) as raised:
        await registry.register(tool_spec("add", "1.0.0", description="adds two numbers", cost=0.5))

    assert raised.value.differences == ["cost", "description"]
    assert "add@1.0.0" in raised.value.message
    assert "cost" in raised.value.message
    assert "description" in raised.value.message
    assert await store.tools.get("add", "1.0.0") == stored
    assert await store.tools.all() == before
    assert (await registry.get("add", "1.0.0")).description == ""


async def test_re_registering_the_identical_definition_is_a_no_op(registry, store):
    before = await store.tools.all()

    created = await registry.register(tool_spec("add", "1.0.0"))

    assert created is False
    assert await store.tools.all() == before


async def test_a_conflict_in_a_batch_registers_none_of_the_batch(registry, store):
    before = await store.tools.all()

    with pytest.raises(ToolConflict):
        await registry.register_all([tool_spec("add", "5.0.0"), tool_spec("double", "1.0.0", cost=2.0)])

    assert await store.tools.all() == before
    assert await store.tools.get("add", "5.0.0") is None


async def test_after_refused_input_the_engine_still_runs_good_steps(engine, store):
    await refused(engine, store, in_chain({"toll": "x"}))
    await refused(engine, store, in_chain({"tool": "ad"}), UnknownTool)

    run = await engine.run({"tool": "add"}, {"a": 1, "b": 2})

    assert run.status == "succeeded"
    assert run.output == {"sum": 3}
    assert [r.id for r in await store.list_runs()] == [run.id]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param(RunOptions(max_steps=0), "max_steps", id="max-steps-zero"),
        pytest.param(RunOptions(max_cost=-1.0), "max_cost_per_run", id="negative-cost"),
        pytest.param(RunOptions(deadline_s=-5.0), "max_run_s", id="negative-deadline"),
    ],
)
async def test_a_budget_option_out_of_range_is_invalid_input(engine, store, options, field):
    error = await refused(engine, store, {"tool": "add"}, options=options)

    assert error.type == "invalid_input"
    assert field in error.message
