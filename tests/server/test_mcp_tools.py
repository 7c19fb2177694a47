"""The MCP surface through real in-process client sessions, in both protocol eras."""

from __future__ import annotations

import datetime
import json
from typing import Any

import anyio
import pytest
from mcp import Client

from server import Settings, build_server
from server.config import ConfigError
from server.results import RunResult

pytestmark = pytest.mark.anyio

RUN_TOOLS = {"run_chain", "fan_out", "map_reduce", "route", "refine"}
CONTRACT_TOOLS = RUN_TOOLS | {"validate", "get_run", "wait_run", "list_runs", "cancel_run", "find_tools",
                              "describe_tool", "await_approval", "decide_gate", "emit_event"}  # fmt: skip


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def error_text(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert isinstance(text, str)
    return text


RUN_RESULT_TOOLS = RUN_TOOLS | {"await_approval", "decide_gate", "get_run", "wait_run", "cancel_run"}


def _titled(schema: Any) -> bool:
    """Whether a JSON schema (or any schema inside it) carries a ``title`` keyword."""
    if isinstance(schema, list):
        return any(_titled(s) for s in schema)
    if not isinstance(schema, dict):
        return False
    if isinstance(schema.get("title"), str):
        return True
    return any(
        any(_titled(s) for s in value.values()) if key in ("properties", "$defs") else _titled(value)
        for key, value in schema.items()
    )


async def test_every_contract_tool_is_listed_with_a_description_and_a_compact_schema(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert CONTRACT_TOOLS <= set(tools)
    for name in CONTRACT_TOOLS:
        description = tools[name].description
        assert description is not None and len(description) > 60, name
        if name in RUN_RESULT_TOOLS - {"get_run"}:  # the RunResult schema is written once, on get_run
            assert tools[name].output_schema is None and "RunResult" in description, name
        else:
            assert tools[name].output_schema is not None, name
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.values()]
    size = len(json.dumps(listed, separators=(",", ":")))
    assert size < 25 * 1024, size  # compact: a client reads all of it
    for tool in tools.values():
        assert not _titled(tool.input_schema) and not _titled(tool.output_schema), tool.name
    run_fields = set(tools["get_run"].output_schema["properties"])  # type: ignore[index]
    assert "answer" not in tools["await_approval"].input_schema["properties"]  # the human's, never the model's
    assert run_fields == {
        "run_id",
        "status",
        "output",
        "output_truncated",
        "error",
        "missing",
        "steps",
        "step_counts",
        "steps_omitted",
        "usage",
        "created_at",
        "finished_at",
        "gate",
        "next_action",
        "history",
        "children",
        "tags",
        "trace_id",
    }


async def test_run_chain_returns_the_finished_run_with_its_steps(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        run = await call(
            client,
            "run_chain",
            {
                "steps": [{"tool": "add"}, {"tool": "double", "input": {"value": {"$": "prev.sum"}}}],
                "input": {"a": 1, "b": 2},
            },
        )
    result = RunResult.model_validate(run)
    assert result.status == "succeeded"
    assert result.output == {"value": 6}
    assert [(s.path, s.tool, s.version, s.status) for s in result.steps] == [
        ("", "chain", None, "completed"),
        ("0", "add", "1.0.0", "completed"),
        ("1", "double", "1.0.0", "completed"),
    ]
    assert result.usage.steps == 2
    assert "use its output" in result.next_action
    assert result.created_at is not None and result.finished_at is not None
    created, finished = (datetime.datetime.fromisoformat(t) for t in (result.created_at, result.finished_at))
    assert result.finished_at.endswith("Z") and created <= finished


async def test_a_slow_run_comes_back_running_and_wait_run_gets_the_outcome(settings: Settings, mode: str):
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(build_server(settings), mode=mode) as client:
        started = await client.call_tool(
            "run_chain",
            {"steps": [{"tool": "sleepy", "input": {"seconds": 1.5}}], "options": {"wait_s": 1.2}},
            progress_callback=on_progress,
        )
        assert started.structured_content is not None
        first = RunResult.model_validate(started.structured_content)
        assert first.status == "running" and first.finished_at is None and first.created_at is not None
        assert "wait_run" in first.next_action and first.run_id in first.next_action
        done = RunResult.model_validate(await call(client, "wait_run", {"run_id": first.run_id, "timeout_s": 10}))
    assert done.status == "succeeded"
    assert seen and seen[0][1] == 1


async def test_a_run_keeps_going_after_the_call_returns(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        first = await call(client, "run_chain", {"steps": [{"tool": "sleepy", "input": {"seconds": 0.3}}],
                                                  "options": {"wait_s": 0}})  # fmt: skip
        assert first["status"] == "running"
        with anyio.fail_after(5):
            while (await call(client, "get_run", {"run_id": first["run_id"]}))["status"] == "running":
                await anyio.sleep(0.05)
        assert (await call(client, "get_run", {"run_id": first["run_id"]}))["status"] == "succeeded"


async def test_the_same_idempotency_key_returns_the_same_run(settings: Settings, mode: str):
    args = {"steps": [{"tool": "add"}], "input": {"a": 2, "b": 2}, "options": {"idempotency_key": "order-7"}}
    async with Client(build_server(settings), mode=mode) as client:
        first = await call(client, "run_chain", args)
        second = await call(client, "run_chain", args)
        runs = await call(client, "list_runs", {})
    assert first["run_id"] == second["run_id"]
    assert [r["run_id"] for r in runs["runs"]] == [first["run_id"]]


async def test_fan_out_best_effort_names_the_branch_that_timed_out(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        run = await call(
            client,
            "fan_out",
            {
                "branches": [{"tool": "double"}, {"tool": "sleepy", "input": {"seconds": 5}}],
                "input": {"value": 4},
                "strategy": "best_effort",
                "branch_timeout_s": 0.2,
                "reduce": {"tool": "summarize", "input": {"results": {"$": "results"}}},
            },
        )
    assert run["status"] == "partial"
    assert run["missing"] == ["fan_out/1"]
    assert run["output"] == {"count": 2, "present": 1, "missing": 1}
    assert "fan_out/1" in run["next_action"]


async def test_map_reduce_route_and_refine_run_through_their_tools(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        mapped = await call(
            client,
            "map_reduce",
            {"items": [1, 2, 3], "map": {"tool": "double", "input": {"value": {"$": "item"}}},
             "reduce": {"tool": "total", "input": {"values": {"$": "results"}}}},
        )  # fmt: skip
        routed = await call(
            client,
            "route",
            {"input": {"text": "my invoice is wrong"}, "on": "input.text && 'billing'",
             "cases": {"billing": {"tool": "classify"}}},
        )  # fmt: skip
        refined = await call(
            client,
            "refine",
            {"input": {"text": "draft"}, "generate": {"tool": "draft"}, "evaluate": {"tool": "grade"},
             "score": "score", "threshold": 0.9, "max_iterations": 5},
        )  # fmt: skip
    assert mapped["output"] == {"total": 12}
    assert routed["output"]["category"] == "billing"
    assert refined["output"]["reached_threshold"] and refined["output"]["stop_reason"] == "threshold"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("run_chain", {"steps": [{"toll": "add"}]}, "invalid_input: invalid step: chain[0]: unknown step kind"),
        ("run_chain", {"steps": [{"tool": "ad"}]}, "unknown_tool: step 0: unknown tool 'ad'; did you mean 'add'"),
        ("run_chain", {"steps": [{"tool": "add@^9"}]}, "no version of 'add' satisfies '^9'; versions: 1.0.0"),
        ("run_chain", {"steps": [{"tool": "add", "input": {"$": "steps.nope"}}]}, "no step has id 'nope'"),
        ("fan_out", {"branches": [{"tool": "add"}], "strategy": "quorum"}, "strategy 'quorum' needs `quorum`"),
        ("refine", {"generate": {"tool": "draft"}, "evaluate": {"tool": "grade"}, "score": "score",
                    "threshold": 1, "max_iterations": 500}, "limit_exceeded: limit max_iterations=25"),
        ("get_run", {"run_id": "nope"}, "invalid_input: no run with id 'nope'"),
        ("describe_tool", {"ref": "add@^^1"}, "is not a valid tool reference"),
        ("run_chain", {"steps": [{"tool": "add"}], "options": {"wait": 1}},
         "invalid_input: argument options.wait: Extra inputs are not permitted; did you mean wait_s?"),
        ("run_chain", {"step": [{"tool": "add"}], "steps": [{"tool": "add"}]},
         "invalid_input: argument step: unknown argument; did you mean steps?"),
        ("map_reduce", {"items": [1], "map": {"tool": "echo"}, "input": {"x": 1}},
         "invalid_input: argument input: unknown argument; map_reduce takes items, map, reduce, chunk_size,"),
        ("await_approval", {"title": "t", "brief": "b", "answer": {"decision": "approve"}},
         "invalid_input: argument answer: unknown argument"),  # the human's answer, never the model's
    ],
)  # fmt: skip
async def test_bad_calls_are_specific_tool_errors_and_start_nothing(
    settings: Settings, mode: str, tool: str, arguments: dict[str, Any], expected: str
):
    async with Client(build_server(settings), mode=mode) as client:
        assert expected in await error_text(client, tool, arguments)
        assert (await call(client, "list_runs", {}))["runs"] == []


async def test_a_contract_violation_fails_the_run_naming_field_and_rule(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        run = await call(client, "run_chain", {"steps": [{"tool": "wrong-output"}], "input": {}})
    assert run["status"] == "failed"
    assert run["error"]["type"] == "contract_violation"
    assert run["error"]["step"] == "0"
    assert "field total" in run["error"]["message"] and "rule: type" in run["error"]["message"]


async def test_cancel_run_stops_a_running_run(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        first = await call(client, "run_chain", {"steps": [{"tool": "sleepy", "input": {"seconds": 30}}],
                                                  "options": {"wait_s": 0.2}})  # fmt: skip
        with anyio.fail_after(5):
            cancelled = await call(client, "cancel_run", {"run_id": first["run_id"], "reason": "test"})
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["type"] == "cancelled"
    assert [s["status"] for s in cancelled["steps"] if s["path"] == "0"] == ["cancelled"]


async def test_validate_reports_the_lock_and_schema_gaps(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        good = await call(client, "validate", {"step": {"chain": [{"tool": "add"}, {"tool": "double@^1"}]}})
        gap = await call(client, "validate", {"step": {"chain": [{"tool": "double"}, {"tool": "add"}]}})
        bad = await call(client, "validate", {"step": {"chain": [{"tool": "ad"}]}})
    assert good == {"valid": True, "lock": {"add": "1.0.0", "double@^1": "1.0.0"}, "problems": []}
    assert not bad["valid"] and "unknown tool 'ad'" in bad["problems"][0]
    assert gap["valid"]  # double declares no output schema: nothing can be concluded


async def test_find_and_describe_tools(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        found = await call(client, "find_tools", {"query": "add"})
        described = await call(client, "describe_tool", {"ref": "add@^1"})
    assert [t["name"] for t in found["tools"]] == ["add"]
    assert described["version"] == "1.0.0" and described["versions"] == ["1.0.0"]
    assert described["input_schema"]["required"] == ["a", "b"]


async def test_run_and_tool_resources_and_the_supervise_prompt(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        run = await call(client, "run_chain", {"steps": [{"tool": "add"}], "input": {"a": 1, "b": 1}})
        run_text = await client.read_resource(f"podium://runs/{run['run_id']}")
        tool_text = await client.read_resource("podium://tools/add/1.0.0")
        prompt = await client.get_prompt("supervise", {"goal": "pay invoices"})
    assert f'"run_id":"{run["run_id"]}"' in run_text.contents[0].text  # type: ignore[union-attr]
    assert '"name":"add"' in tool_text.contents[0].text  # type: ignore[union-attr]
    assert "wait_run" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_two_hundred_concurrent_calls_on_one_session_all_answer_correctly(settings: Settings, mode: str):
    answers: dict[int, Any] = {}
    async with Client(build_server(settings), mode=mode) as client:

        async def one(i: int) -> None:
            run = await call(client, "run_chain", {"steps": [{"tool": "add"}], "input": {"a": i, "b": 1}})
            answers[i] = run["output"]["sum"]

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, i)
    assert answers == {i: i + 1 for i in range(200)}


async def test_an_unexpected_failure_is_internal_and_leaks_nothing(
    settings: Settings, mode: str, caplog: pytest.LogCaptureFixture
):
    import sqlite3

    db_file = settings.database_url.removeprefix("sqlite:///")

    def rename(old: str, new: str) -> None:
        with sqlite3.connect(db_file, timeout=30) as conn:
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")

    async with Client(build_server(settings), mode=mode) as client:
        # A real fault under a live server: the table goes. The rename runs in a thread, so the server's loop goes
        # on and a write transaction it has open (the scheduler's) can finish instead of waiting on the rename.
        await anyio.to_thread.run_sync(rename, "runs", "runs_gone")
        try:
            text = await error_text(client, "list_runs", {})
        finally:
            await anyio.to_thread.run_sync(rename, "runs_gone", "runs")
    assert text == "internal: the run store failed; see the server log", text
    assert "no such table: runs" in caplog.text  # what failed went to the log


async def test_reading_a_run_or_tool_that_does_not_exist_says_so(
    settings: Settings, mode: str, caplog: pytest.LogCaptureFixture
):
    from mcp import MCPError

    async with Client(build_server(settings), mode=mode) as client:
        with pytest.raises(MCPError) as run:
            await client.read_resource("podium://runs/nope")
        with pytest.raises(MCPError) as version:
            await client.read_resource("podium://tools/add/9.9.9")
    assert run.value.error.code == -32602 and run.value.error.message == "no run with id 'nope'"
    assert version.value.error.code == -32602
    assert "no version of 'add' satisfies '9.9.9'" in version.value.error.message
    assert "Traceback" not in caplog.text and "ERROR" not in caplog.text


async def test_default_wait_s_bounds_run_starting_calls_and_wait_run_for_clients_with_short_timeouts(
    settings: Settings, mode: str
):
    # e.g. the OpenAI Agents SDK gives up on a request after 5 s: the model must get the run id before that
    quick = settings.model_copy(update={"default_wait_s": 0.2})
    slow = {"steps": [{"tool": "sleepy", "input": {"seconds": 30}}]}
    async with Client(build_server(quick), mode=mode) as client:
        with anyio.fail_after(5):
            started = await call(client, "run_chain", slow)
            assert started["status"] == "running" and "wait_run" in started["next_action"]
            waited = await call(client, "wait_run", {"run_id": started["run_id"]})  # no timeout_s: the default
            assert waited["status"] == "running"
        cancelled = await call(client, "cancel_run", {"run_id": started["run_id"]})
    assert cancelled["status"] == "cancelled"


def test_default_wait_s_comes_from_the_environment_and_is_at_most_50() -> None:
    assert Settings.load(environ={"PODIUM_DEFAULT_WAIT_S": "4"}).default_wait_s == 4
    with pytest.raises(ConfigError, match="default_wait_s"):
        Settings.load(environ={"PODIUM_DEFAULT_WAIT_S": "60"})


async def test_a_running_runs_usage_and_progress_count_the_tool_steps_finished_so_far(settings: Settings, mode: str):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    chain = {
        "steps": [{"tool": "echo"}, {"tool": "echo"}, {"tool": "sleepy", "input": {"seconds": 30}}],
        "input": {"x": 1},
        "options": {"wait_s": 1.5},
    }
    async with Client(build_server(settings), mode=mode) as client:
        started = await client.call_tool("run_chain", chain, progress_callback=on_progress)
        run = started.structured_content
        assert run is not None and run["status"] == "running"
        now = await call(client, "get_run", {"run_id": run["run_id"]})
        await call(client, "cancel_run", {"run_id": run["run_id"]})
    assert run["usage"]["steps"] == 2 and now["usage"]["steps"] == 2  # live, not the zero stored until the end
    assert now["usage"]["duration_ms"] >= run["usage"]["duration_ms"] > 0
    assert seen and seen[-1] == (2, 3, "2 steps done")  # finished steps, not started ones (3 had started)


async def test_a_call_without_input_sends_an_empty_object_and_a_budget_too_small_is_refused_before_the_run(
    settings: Settings, mode: str
):
    async with Client(build_server(settings), mode=mode) as client:
        run = await call(client, "run_chain", {"steps": [{"tool": "echo"}]})  # no input
        refused = await error_text(
            client, "run_chain", {"steps": [{"tool": "echo"}] * 3, "options": {"budget": {"max_steps": 2}}}
        )
        runs = (await call(client, "list_runs", {}))["runs"]
    assert run["status"] == "succeeded" and run["output"] == {}  # echo got {} rather than null
    assert refused.startswith("limit_exceeded:") and "raise options.budget.max_steps" in refused
    assert "at least 3 tool steps" in refused
    assert [r["run_id"] for r in runs] == [run["run_id"]]  # the refused call started nothing


async def test_a_large_run_answers_with_a_small_result_listing_its_problems_first(settings: Settings, mode: str):
    branches = [{"tool": "broken"} if n in (7, 150, 299) else {"tool": "echo", "input": {"n": n}} for n in range(300)]
    small = settings.model_copy(update={"max_result_bytes": 1024})
    async with Client(build_server(small), mode=mode) as client:
        result = await client.call_tool("fan_out", {"branches": branches, "strategy": "best_effort"})
        run = result.structured_content
        assert run is not None
        run_id = run["run_id"]
        fewer = await call(client, "get_run", {"run_id": run_id, "step_limit": 5})
        none = await call(client, "wait_run", {"run_id": run_id, "step_limit": 0})
        steps = json.loads((await client.read_resource(f"podium://runs/{run_id}/steps")).contents[0].text)  # type: ignore[union-attr]
        output = json.loads((await client.read_resource(f"podium://runs/{run_id}/output")).contents[0].text)  # type: ignore[union-attr]

    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == run and "\n" not in text and len(text) < 8 * 1024  # compact JSON, the same data
    assert run["status"] == "partial" and run["missing"] == ["fan_out/7", "fan_out/150", "fan_out/299"]
    assert [s["path"] for s in run["steps"][:3]] == ["fan_out/7", "fan_out/150", "fan_out/299"]  # problems first
    assert [s["status"] for s in run["steps"][3:]] == ["completed"] * 17 and run["steps"][3]["path"] == ""
    assert run["step_counts"] == {"completed": 298, "failed": 3, "cancelled": 0, "running": 0, "skipped": 0}
    assert len(run["steps"]) == 20 and run["steps_omitted"] == 281
    assert run["output"] is None and run["output_truncated"] is True  # over max_result_bytes (1 KiB here)
    assert f"podium://runs/{run_id}/output" in run["next_action"]
    assert len(fewer["steps"]) == 5 and fewer["steps_omitted"] == 296
    assert none["steps"] == [] and none["steps_omitted"] == 301 and none["step_counts"] == run["step_counts"]
    assert steps["run_id"] == run_id and len(steps["steps"]) == 301
    assert len(output) == 300 and output[0] == {"n": 0} and output[7] is None
