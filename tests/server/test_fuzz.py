"""Fuzz every MCP tool's arguments through a real client session: whatever arrives, the answer is a result or a
tool error whose text starts with a specific error type, never ``internal``, and the server keeps answering.

Examples come from hypothesis: the tools' own argument names (and some others) with values that are well-formed
step trees, near misses and hostile data — wrong types, huge and negative numbers, long strings, deep nesting,
JMESPath bombs, thousands of branches. The number of examples is bounded so the suite stays quick in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings, strategies as st
from mcp import Client
from mcp.types import CallToolResult

from patterns.errors import ERROR_TYPES
from server import Settings, build_server
from tests.server.conftest import write_registry

EXAMPLES_PER_TOOL = int(os.environ.get("FUZZ_EXAMPLES", "30"))  # more locally: FUZZ_EXAMPLES=2000
TOOLS = ["run_chain", "fan_out", "map_reduce", "route", "refine", "validate", "get_run", "wait_run", "list_runs",
         "cancel_run", "find_tools", "describe_tool", "await_approval", "decide_gate"]  # fmt: skip
Names = dict[str, tuple[list[str], list[str]]]  # a tool's required arguments, and all of them
RUN_STARTING = {"run_chain", "fan_out", "map_reduce", "route", "refine", "await_approval"}
SAFE_TOOLS = ["noop", "echo", "add", "double", "classify", "summarize", "total", "received", "nest", "broken", "crash",
              "wrong-output", "unjsonable", "grade", "draft", "pick-score"]  # fmt: skip
EXPRESSIONS = ["input", "input.x", "prev", "steps.a", "item", "results", "[input, input]", "input | [@,@] | [@,@]",
               "length(input)", "sort_by(input, &a)", "unknown_fn(input)", "(((input)))", "!" * 40 + "input",
               "input" + " | [@,@]" * 22, "`1`", "`[1, 2]`", "a[", "", "x" * 5000, "[" * 300 + "input" + "]" * 300,
               "to_string(input)", "input[*].a", "input[]"]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["x" * 300, "y" * 70_000, "01a2-not-a-run-id", "requester", "system:sla", "all", "quorum"]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@st.composite
def deep(draw: st.DrawFn) -> Any:
    value: Any = draw(scalars)
    for _ in range(draw(st.integers(min_value=50, max_value=180))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


templates = st.one_of(json_values, st.builds(lambda e: {"$": e}, st.sampled_from(EXPRESSIONS)), deep())


def steps(depth: int = 2) -> st.SearchStrategy[Any]:
    """Step trees: mostly well-formed (so that runs start and go their way), some near misses and garbage."""
    tool = st.fixed_dictionaries(
        {"tool": st.sampled_from(SAFE_TOOLS)},
        optional={"input": templates, "id": st.sampled_from(["a", "b", "c"]), "timeout_s": st.floats(0.01, 5),
                  "critical": st.booleans(), "fallback": st.sampled_from(SAFE_TOOLS)},
    )  # fmt: skip
    near_miss = st.one_of(
        st.fixed_dictionaries({"tool": st.one_of(st.text(max_size=10), st.just("t" * 300))},
                              optional={"retry": json_values, "timeout_s": st.floats(-1, 5),
                                        "id": st.text(max_size=9)}),
        json_values,
    )  # fmt: skip
    if depth == 0:
        return st.one_of(tool, tool, near_miss)
    child = steps(depth - 1)
    # thousands of branches of a plain step, at the top only: repeated at every level, one example held millions
    # of steps, and the client spent minutes serialising it before the server could refuse it
    repeated = st.builds(lambda s, n: [s] * n, steps(0), st.integers(0, 3000)) if depth == 2 else st.nothing()
    children = st.lists(child, min_size=1, max_size=4) | repeated
    strategy = st.sampled_from(["all", "best_effort", "quorum", "most"])
    return st.one_of(
        tool,
        tool,
        st.builds(lambda c: {"chain": c}, children),
        st.builds(
            lambda b, s, q: {"fan_out": {"branches": b, "strategy": s, **({"quorum": q} if s == "quorum" else {})}},
            children,
            strategy,
            st.integers(1, 3),
        ),  # fmt: skip
        st.builds(lambda m, i: {"map_reduce": {"map": m, "items": i}}, child, st.lists(json_values, max_size=4)),
        st.builds(lambda m: {"map_reduce": {"map": m}}, child),
        st.builds(
            lambda on, c, d: {"route": {"on": on, "cases": {"a": c, "1": c}, "default": d}},
            st.sampled_from(EXPRESSIONS),
            child,
            child,
        ),  # fmt: skip
        st.builds(
            lambda g, e, sc: {"refine": {"generate": g, "evaluate": e, "score": sc, "threshold": 0.5}},
            child,
            child,
            st.sampled_from(EXPRESSIONS),
        ),  # fmt: skip
        st.builds(
            lambda p: {"gate": {"title": "t", "approvers": ["ana"], "payload_schema": p}},
            st.none() | json_values | deep(),
        ),  # fmt: skip
        near_miss,
    )


def value_for(name: str) -> st.SearchStrategy[Any]:
    """Values for an argument: mostly of the kind it takes, often of any kind."""
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "steps": st.lists(steps(), max_size=4) | st.builds(lambda s, n: [s] * n, steps(0), st.integers(0, 20_000)),
        "branches": st.lists(steps(), max_size=4) | st.builds(lambda s, n: [s] * n, steps(0), st.integers(0, 20_000)),
        "map": steps(), "reduce": steps(), "generate": steps(), "evaluate": steps(), "default": steps(),
        "step": steps(), "cases": st.dictionaries(st.text(max_size=300), steps(1), max_size=4),
        "items": st.lists(json_values, max_size=5) | st.builds(lambda n: [1] * n, st.integers(0, 5000)),
        "on": st.sampled_from(EXPRESSIONS), "score": st.sampled_from(EXPRESSIONS),
        "input": templates, "payload": templates, "payload_schema": json_values | deep(),
        "options": st.fixed_dictionaries({}, optional={
            "idempotency_key": st.text(max_size=300), "deadline_s": st.floats(-1, 1e9), "tags": json_values,
            "budget": st.fixed_dictionaries({}, optional={"max_steps": st.integers(-5, 10**6),
                                                          "max_cost": st.floats(-1, 10)}),
            "parent_run_id": st.text(max_size=80)}) | json_values,
        "run_id": st.text(max_size=80) | st.sampled_from(["r" * 10_000]), "gate_id": st.text(max_size=80),
        "decision": st.sampled_from(["approve", "reject", "modify", "maybe"]),
        "quorum": st.integers(-3, 5000), "chunk_size": st.integers(-3, 10**9),
        "max_concurrency": st.integers(-3, 10**6),
        "max_iterations": st.integers(-3, 10**6), "threshold": st.floats(-1e300, 1e300),
        "approvers": st.lists(st.text(max_size=200), max_size=40), "escalate_to": st.lists(st.text(max_size=20)),
        "sla_s": st.floats(-1, 1e12), "title": st.text(max_size=300), "brief": st.text(max_size=20) | scalars,
        "status": st.text(max_size=20) | st.sampled_from(["running", "failed"]), "limit": st.integers(-5, 10**6),
        "ref": st.text(max_size=300) | st.sampled_from(SAFE_TOOLS),
    }  # fmt: skip
    specific = by_name.get(name, json_values)
    return st.one_of(specific, specific, specific, json_values)


def arguments(required: list[str], optional: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Every required argument (now and then one is missing), any of the others, and now and then one unknown."""
    present = st.fixed_dictionaries(
        {name: value_for(name) for name in required},
        optional={name: value_for(name) for name in [*optional, "surprise"]},
    )
    return st.one_of(present, present, present, st.fixed_dictionaries({}, optional={n: value_for(n) for n in required}))


def quick(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Keep each example short: run-starting calls return at once, waits are brief."""
    if tool in RUN_STARTING:
        options = args.get("options", {})
        if isinstance(options, dict):
            args["options"] = {**options, "wait_s": 0}
    if tool == "wait_run":
        args["timeout_s"] = 0
    return args


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, Client, Names]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    registry = write_registry(tmp / "tools.json")
    config = Settings.load(environ={}, database_url=f"sqlite:///{tmp / 'podium.db'}").model_copy(
        update={"registry": (str(registry),)}
    )
    with start_blocking_portal("asyncio") as portal:
        with portal.wrap_async_context_manager(Client(build_server(config), mode="legacy")) as client:
            listed = portal.call(client.list_tools)
            names = {t.name: (sorted(t.input_schema.get("required", [])), sorted(t.input_schema.get("properties", {})))
                     for t in listed.tools}  # fmt: skip
            yield portal, client, names


def check(tool: str, args: dict[str, Any], result: CallToolResult) -> None:
    if result.is_error:
        text = result.content[0].text  # type: ignore[union-attr]
        kind = text.split(":", 1)[0]
        assert kind in ERROR_TYPES and kind != "internal", f"{tool}: {text[:500]}"
        assert len(text) < 5_000, f"{tool}: an error of {len(text)} characters"
        return
    data = result.structured_content
    assert data is not None, tool
    error = data.get("error")
    assert not (isinstance(error, dict) and error.get("type") == "internal"), f"{tool}: {error}"


@pytest.mark.parametrize("tool", TOOLS)
# hypothesis warns when it prints a large generated input; that is a note about its report, not a finding
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_any_arguments_get_a_specific_answer_and_the_server_keeps_answering(
    served: tuple[BlockingPortal, Client, Names], tool: str
) -> None:
    portal, client, names = served
    required, every = names[tool]

    async def call(args: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(30):
            return await client.call_tool(tool, args)

    async def probe() -> None:
        with anyio.fail_after(2):
            answer = await client.call_tool("list_runs", {"limit": 1})
        assert not answer.is_error, answer.content

    @settings(max_examples=EXAMPLES_PER_TOOL, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(args=arguments(required, [name for name in every if name not in required]))
    def fuzz(args: dict[str, Any]) -> None:
        args = quick(tool, args)
        check(tool, args, portal.call(call, args))
        portal.call(probe)

    fuzz()
