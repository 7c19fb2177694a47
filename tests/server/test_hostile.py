"""Hostile input through real MCP sessions: each bomb is one call, answered with a specific error (or a bounded
result), while the server keeps answering ``list_runs`` (within 2 s) during the call and after it."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from mcp import Client
from mcp.types import CallToolResult

from patterns.errors import ERROR_TYPES
from server import Settings, build_server
from tests.helpers import PODIUM, REPO, serve_args, server_env

pytestmark = pytest.mark.anyio
ANSWER_WITHIN_S = 2.0
PROBE_EVERY_S = 0.05
MAX_ERROR_TEXT = 3000  # no error repeats what was sent: every value quoted in a message is clipped
ECHO = {"tool": "echo"}


class RawStdio:
    """``podium serve`` over stdio spoken to as raw JSON-RPC lines (2025-11-25), so that what is sent is exactly
    what a client could write (``NaN`` literals, a line of megabytes)."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.replies: dict[int, dict[str, Any]] = {}
        self.buffer = b""
        self.next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")  # allow_nan: NaN stays a literal

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        assert self.process.stdout is not None
        with anyio.fail_after(30):
            while self.next_id not in self.replies:
                self.buffer += await self.process.stdout.receive()
                *lines, self.buffer = self.buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    self.replies[message.get("id")] = message
        return self.replies.pop(self.next_id)

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self.request("tools/call", {"name": tool, "arguments": arguments})


@asynccontextmanager
async def raw_stdio(tmp_path: Path, registry_file: Path) -> AsyncIterator[RawStdio]:
    args = [PODIUM, *serve_args(tmp_path, registry_file)]
    async with await anyio.open_process(args, env=server_env(), cwd=REPO, stderr=subprocess.DEVNULL) as process:
        server = RawStdio(process)
        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
        await server.request("initialize", hello)
        await server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        try:
            yield server
        finally:
            process.terminate()


async def answering(client: Client, call: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """Make ``call`` while ``list_runs`` is probed every 50 ms; each probe, and one after the call, must be answered
    within 2 s (a blocked event loop would hold them all)."""
    result: list[CallToolResult] = []
    done = anyio.Event()

    async def probe() -> None:
        with anyio.fail_after(ANSWER_WITHIN_S):
            answer = await client.call_tool("list_runs", {"limit": 1})
        assert not answer.is_error, answer.content

    async def bomb() -> None:
        try:
            result.append(await call())
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(bomb)
        while not done.is_set():
            await probe()
            with anyio.move_on_after(PROBE_EVERY_S):
                await done.wait()
    await probe()
    return result[0]


def error_of(result: CallToolResult) -> tuple[str, str]:
    """The error type a tool error's text starts with, and the text; for a run, its error's type and message."""
    if result.is_error:
        text = result.content[0].text  # type: ignore[union-attr]
        assert len(text) < MAX_ERROR_TEXT, text[:300]
        kind = text.split(":", 1)[0]
        assert kind in ERROR_TYPES, text[:300]  # the text starts with the error type, never the SDK's prefix
        return kind, text
    run = result.structured_content
    assert run is not None and run["error"] is not None, run
    assert len(run["error"]["message"]) < MAX_ERROR_TEXT
    return run["error"]["type"], run["error"]["message"]


async def bomb(settings: Settings, mode: str, tool: str, arguments: dict[str, Any]) -> tuple[str, str]:
    async with Client(build_server(settings), mode=mode) as client:
        result = await answering(client, lambda: client.call_tool(tool, arguments))
        return error_of(result)


def nested_fan_out(width: int) -> dict[str, Any]:
    inner = {"fan_out": {"branches": [ECHO] * width}}
    middle = {"fan_out": {"branches": [inner] * width}}
    return {"branches": [middle] * width, "input": {"x": 1}}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_a_tree_of_more_tool_steps_than_max_steps_is_refused_before_it_runs(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        result = await answering(client, lambda: client.call_tool("fan_out", nested_fan_out(22)))
        runs = await client.call_tool("list_runs", {})
    kind, text = error_of(result)
    assert kind == "limit_exceeded" and "max_steps=10000" in text and "at least 10648 tool steps" in text
    assert runs.structured_content == {"runs": []}  # nothing was created, nothing ran


async def test_a_tree_of_a_million_leaves_is_refused_by_its_size_at_once(settings: Settings):
    # in-process (the 2026 protocol passes the objects as they are): 17 MB as JSON, refused by counting its steps
    kind, text = await bomb(settings, "auto", "fan_out", nested_fan_out(100))
    assert kind == "limit_exceeded" and "max_tree_nodes=20000" in text


@pytest.mark.parametrize(
    ("tool", "arguments", "limit"),
    [
        pytest.param("fan_out", {"branches": [ECHO] * 1_000_000}, "max_fan_out=1000", id="a-million-branches"),
        pytest.param("map_reduce", {"items": [1] * 5_000, "map": ECHO}, "max_fan_out=1000", id="5000-items"),
        pytest.param(
            "route",
            {"on": "input.k", "cases": {str(i): ECHO for i in range(5_000)}},
            "max_fan_out=1000",
            id="5000-cases",
        ),
    ],
)
async def test_too_wide_is_refused_before_anything_runs(
    settings: Settings, mode: str, tool: str, arguments: dict[str, Any], limit: str
):
    kind, text = await bomb(settings, mode, tool, arguments)
    assert kind == "limit_exceeded" and limit in text


@pytest.mark.parametrize(
    ("expression", "limit"),
    [
        pytest.param("x" * 10_485_760, "at most 4096 characters", id="10-MB-identifier"),
        pytest.param("(" * 500 + "input" + ")" * 500, "max_expression_depth=32", id="parentheses"),
        pytest.param("[" * 1000, "max_expression_depth=32", id="brackets"),
        pytest.param("!" * 1000 + "input", "max_expression_depth=32", id="negations"),
        pytest.param("input" + " | @" * 1000, "max_expression_depth=32", id="pipes"),
    ],
)
async def test_route_expressions_are_bounded_in_length_and_depth(
    settings: Settings, mode: str, expression: str, limit: str
):
    kind, text = await bomb(settings, mode, "route", {"on": expression, "cases": {"a": ECHO}, "input": {"x": 1}})
    assert kind in ("invalid_input", "limit_exceeded") and limit in text


async def test_a_backtick_literal_of_a_megabyte_in_a_template_is_refused(settings: Settings, mode: str):
    template = {"tool": "echo", "input": {"v": {"$": "`" + "1" * 1_000_000 + "`"}}}
    kind, text = await bomb(settings, mode, "run_chain", {"steps": [template], "input": {}})
    assert kind == "limit_exceeded" and "max_expression_chars=4096" in text


async def test_a_route_value_built_to_explode_fails_the_run_with_a_short_message(settings: Settings, mode: str):
    # 22 doublings: four million leaves if it were ever encoded
    kind, text = await bomb(
        settings, mode, "route", {"on": "input" + " | [@,@]" * 22, "cases": {"a": ECHO}, "input": "x"}
    )
    assert kind == "invalid_input" and "a list too large to name a case" in text


async def test_a_refine_score_built_to_explode_fails_the_run_with_a_short_message(settings: Settings, mode: str):
    arguments = {"generate": ECHO, "evaluate": ECHO, "score": "x" + " | [@,@]" * 20, "threshold": 1, "input": {"x": 1}}
    kind, text = await bomb(settings, mode, "refine", arguments)
    assert kind == "contract_violation" and "gave a list, not a number" in text


async def test_an_expression_over_its_evaluation_budget_is_stopped(settings: Settings, mode: str):
    template = {"tool": "echo", "input": {"v": {"$": "input" + " | [@,@][]" * 22}}}
    kind, text = await bomb(settings, mode, "run_chain", {"steps": [template], "input": [1]})
    assert kind == "limit_exceeded" and "max_evaluation_ops=200000" in text


async def test_a_template_that_doubles_a_value_past_the_payload_limit_is_refused_unencoded(
    settings: Settings, mode: str
):
    template = {"tool": "echo", "input": {"v": {"$": "[input, input, input, input]"}}}
    kind, text = await bomb(settings, mode, "run_chain", {"steps": [template], "input": "x" * 400_000})
    assert kind == "limit_exceeded" and "max_payload_bytes=1048576" in text and "at least" in text


async def test_outputs_too_large_together_stop_the_run_at_its_stored_bytes_limit(settings: Settings, mode: str):
    branches = [{"tool": "blob", "input": {"size": 1_000_000}}] * 1_000
    kind, text = await bomb(settings, mode, "fan_out", {"branches": branches})
    assert kind == "limit_exceeded" and "max_run_bytes=33554432" in text


@pytest.mark.parametrize(
    ("expression", "what"),
    [
        pytest.param("unknown_fn(input)", "calls unknown function unknown_fn()", id="unknown-function"),
        pytest.param("abs(`1`, `2`)", "abs() takes 1 argument, not 2", id="arity"),
    ],
)
async def test_jmespath_function_mistakes_are_caught_before_the_run(
    settings: Settings, mode: str, expression: str, what: str
):
    kind, text = await bomb(settings, mode, "route", {"on": expression, "cases": {"a": ECHO}, "input": {}})
    assert kind == "invalid_input" and what in text


async def test_a_jmespath_type_error_at_run_time_fails_the_run_as_invalid_input(settings: Settings, mode: str):
    kind, text = await bomb(settings, mode, "route", {"on": "sort_by(input, &a)", "cases": {"a": ECHO}, "input": {}})
    assert kind == "invalid_input" and "sort_by() got a value of type object, expected array" in text


async def test_output_nested_past_the_depth_limit_is_refused_and_the_server_stays_readable(
    settings: Settings, mode: str
):
    template = {"tool": "echo", "input": {"v": {"$": "[" * 300 + "input" + "]" * 300}}}
    kind, text = await bomb(settings, mode, "run_chain", {"steps": [template], "input": 1})
    assert kind == "limit_exceeded" and "max_expression_depth" in text
    kind, text = await bomb(settings, mode, "run_chain", {"steps": [ECHO], "input": {"v": nested(150)}})
    assert kind == "limit_exceeded" and "max_payload_depth=64" in text


async def test_a_tool_output_nested_past_the_depth_limit_fails_the_run_that_stays_readable(
    settings: Settings, mode: str
):
    async with Client(build_server(settings), mode=mode) as client:
        result = await answering(
            client, lambda: client.call_tool("run_chain", {"steps": [{"tool": "nest", "input": {"depth": 100}}]})
        )
        kind, text = error_of(result)
        assert result.structured_content is not None
        again = await client.call_tool("get_run", {"run_id": result.structured_content["run_id"]})
    assert kind == "limit_exceeded" and "max_payload_depth=64" in text
    assert not again.is_error and again.structured_content is not None
    assert again.structured_content["status"] == "failed"


async def test_a_gate_payload_schema_nested_past_the_limit_is_refused(settings: Settings, mode: str):
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(90):
        schema = {"type": "object", "properties": {"a": schema}}
    arguments = {"title": "t", "brief": "b", "payload_schema": schema, "options": {"wait_s": 0}}
    kind, text = await bomb(settings, mode, "await_approval", arguments)
    assert kind == "limit_exceeded" and "max_payload_depth=64" in text


NAN_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("timeout_s", "run_chain", {"steps": [{"tool": "echo", "timeout_s": math.nan}], "input": {}}),
    ("deadline_s", "run_chain", {"steps": [ECHO], "options": {"deadline_s": math.inf}}),
    ("max_cost", "run_chain", {"steps": [ECHO], "options": {"budget": {"max_cost": math.nan}}}),
    ("threshold", "refine", {"generate": ECHO, "evaluate": ECHO, "score": "s", "threshold": math.nan}),
    ("min_improvement", "refine",
     {"generate": ECHO, "evaluate": ECHO, "score": "s", "threshold": 1, "min_improvement": math.nan}),
    ("branch_timeout_s", "fan_out", {"branches": [ECHO], "branch_timeout_s": math.inf}),
    ("sla_s", "await_approval", {"title": "t", "brief": "b", "sla_s": math.nan}),
    ("input", "run_chain", {"steps": [{"tool": "echo", "input": {"v": math.nan}}]}),
    ("input", "run_chain", {"steps": [ECHO], "input": {"v": -math.inf}}),
    ("payload", "await_approval", {"title": "t", "brief": "b", "payload": {"amount": math.nan}}),
]  # fmt: skip


async def test_nan_and_infinity_sent_as_json_literals_are_invalid_input_naming_the_field(
    tmp_path: Path, registry_file: Path
):
    # sent as raw JSON-RPC lines: Python's JSON and the SDK's parser both read NaN and Infinity literals
    async with raw_stdio(tmp_path, registry_file) as server:
        for field, tool, arguments in NAN_CASES:
            reply = await server.call(tool, arguments)
            text = reply["result"]["content"][0]["text"]
            assert reply["result"]["isError"], (field, text)
            assert text.startswith("invalid_input: ") and field in text, (field, text)
        probe = await server.call("list_runs", {})
    assert probe["result"]["structuredContent"] == {"runs": []}  # nothing was stored


async def test_a_request_over_max_request_bytes_is_refused_over_stdio_before_it_is_parsed(
    tmp_path: Path, registry_file: Path
):
    async with raw_stdio(tmp_path, registry_file) as server:
        arguments = {"branches": [ECHO] * 200_000}  # 3.4 MB of tiny objects
        with anyio.fail_after(ANSWER_WITHIN_S * 5):
            refused = await server.call("fan_out", arguments)
        with anyio.fail_after(ANSWER_WITHIN_S):
            after = await server.call("list_runs", {})
    assert refused["error"]["code"] == -32600
    assert "request too large" in refused["error"]["message"] and "2097152" in refused["error"]["message"]
    assert "error" not in after


@pytest.mark.parametrize(
    ("tool", "arguments", "what"),
    [
        pytest.param(
            "run_chain", {"steps": [ECHO], "options": {"tags": {"k": "v" * 10_000_000}}}, "options.tags", id="tag"
        ),
        pytest.param(
            "run_chain",
            {"steps": [ECHO], "options": {"tags": {str(i): "v" for i in range(100)}}},
            "at most 32 items",
            id="many-tags",
        ),
        pytest.param("await_approval", {"title": "t", "brief": "b" * 10_000_000}, "argument brief", id="brief"),
        pytest.param("await_approval", {"title": "t" * 300, "brief": "b"}, "argument title", id="title"),
        pytest.param(
            "await_approval", {"title": "t", "brief": "b", "approvers": ["a" * 500]}, "argument approvers", id="name"
        ),
        pytest.param("run_chain", {"steps": [{"tool": "t" * 10_000_000}]}, "at most 256 characters", id="tool-name"),
        pytest.param(
            "route", {"on": "input.k", "cases": {"k" * 10_000_000: ECHO}}, "at most 256 characters", id="case-key"
        ),
        pytest.param("run_chain", {"steps": [ECHO], "options": {"wait_s": -1}}, "options.wait_s", id="wait"),
        pytest.param(
            "run_chain", {"steps": [ECHO], "options": {"idempotency_key": "k" * 300}}, "idempotency_key", id="key"
        ),
        pytest.param("get_run", {"run_id": "r" * 10_000}, "argument run_id", id="run-id"),
        pytest.param("cancel_run", {"run_id": "r", "reason": "x" * 5_000}, "argument reason", id="reason"),
        pytest.param("list_runs", {"status": "lost"}, "argument status", id="status"),
        pytest.param("list_runs", {"limit": 10_000}, "argument limit", id="limit"),
        pytest.param("wait_run", {"run_id": "r", "timeout_s": "soon"}, "argument timeout_s", id="type"),
        pytest.param("find_tools", {"query": "q" * 10_000}, "argument query", id="query"),
    ],
)
async def test_oversized_and_mistyped_arguments_are_invalid_input_naming_the_argument(
    settings: Settings, mode: str, tool: str, arguments: dict[str, Any], what: str
):
    kind, text = await bomb(settings, mode, tool, arguments)
    assert kind == "invalid_input", text
    assert what in text
    assert "Error executing tool" not in text


async def test_ids_that_name_nothing_are_invalid_input(settings: Settings, mode: str):
    for tool, arguments in (
        ("get_run", {"run_id": "nope"}),
        ("cancel_run", {"run_id": "nope"}),
        ("decide_gate", {"gate_id": "nope", "decision": "approve"}),
        ("run_chain", {"steps": [ECHO], "options": {"parent_run_id": "nope"}}),
    ):
        kind, text = await bomb(settings, mode, tool, arguments)
        assert kind == "invalid_input", (tool, text)


async def test_an_unknown_tool_is_invalid_input_listing_the_tools(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        result = await client.call_tool("run_chian", {"steps": [ECHO]})
    kind, text = error_of(result)
    assert kind == "invalid_input" and "unknown tool 'run_chian'" in text and "run_chain" in text


async def test_a_refused_bomb_leaves_the_server_working(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        await answering(client, lambda: client.call_tool("fan_out", nested_fan_out(22)))
        await answering(client, lambda: client.call_tool("route", {"on": "input" + " | [@,@]" * 22, "cases": {}}))
        good = await client.call_tool("run_chain", {"steps": [{"tool": "add"}], "input": {"a": 1, "b": 2}})
    assert good.structured_content is not None and good.structured_content["output"] == {"sum": 3}
