"""Every example in a tool's description runs as written against the demo's tools (ids filled in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server import Settings, build_server
from server.demo import TOOLS_FILE
from server.texts import EXAMPLES, TOOL_DOCS

pytestmark = pytest.mark.anyio


@pytest.fixture
def demo_settings(tmp_path: Path) -> Settings:
    return Settings.load(environ={}, database_url=f"sqlite:///{tmp_path / 'podium.db'}").model_copy(
        update={"registry": (str(TOOLS_FILE),)}
    )


def _filled(arguments: dict[str, Any], run_id: str, gate_id: str) -> dict[str, Any]:
    text = json.dumps(arguments).replace("<run_id>", run_id).replace("<gate_id>", gate_id)
    return dict(json.loads(text))


async def test_every_tool_description_shows_its_example(demo_settings: Settings) -> None:
    for tool, arguments in EXAMPLES.items():
        shown = json.dumps(arguments, separators=(", ", ": "), ensure_ascii=False)
        assert f"Example: {shown}" in TOOL_DOCS[tool], tool


async def test_every_example_runs_as_written(demo_settings: Settings, mode: str) -> None:
    outcomes: dict[str, Any] = {}
    async with Client(build_server(demo_settings), mode=mode) as client:

        async def run(tool: str, run_id: str = "", gate_id: str = "") -> None:
            result = await client.call_tool(tool, _filled(EXAMPLES[tool], run_id, gate_id))
            assert not result.is_error, (tool, result.content)
            outcomes[tool] = result.structured_content

        for tool in ("run_chain", "fan_out", "map_reduce", "route", "refine", "await_approval", "validate"):
            await run(tool)
        finished, waiting = outcomes["run_chain"]["run_id"], outcomes["await_approval"]["run_id"]
        for tool in ("get_run", "wait_run", "list_runs", "find_tools", "describe_tool"):
            await run(tool, run_id=finished)
        await run("cancel_run", run_id=waiting)
        await run("emit_event")  # the demo registry's contract-renewals trigger starts contract-amendment
        fired_run = outcomes["emit_event"]["fired"][0]["run_id"]
        tagged = await client.call_tool("get_run", {"run_id": fired_run})
        # decide_gate: only an approver principal decides over MCP (the local person uses the CLI); its example's
        # arguments are checked against the tool's schema by the call being refused for who calls, not for what
        gate_id = outcomes["await_approval"]["gate"]["gate_id"]
        refused = await client.call_tool("decide_gate", _filled(EXAMPLES["decide_gate"], waiting, gate_id))
    assert refused.is_error and "may not decide gates" in refused.content[0].text  # type: ignore[union-attr]
    for tool in ("run_chain", "map_reduce", "route", "refine"):
        assert outcomes[tool]["status"] == "succeeded", (tool, outcomes[tool]["error"])
    assert outcomes["fan_out"]["status"] in ("succeeded", "partial")
    assert outcomes["refine"]["output"]["reached_threshold"] is True
    assert outcomes["await_approval"]["status"] == "waiting"
    assert outcomes["validate"]["valid"] is True, outcomes["validate"]["problems"]
    assert outcomes["get_run"]["status"] == outcomes["wait_run"]["status"] == "succeeded"
    assert "extract-invoice" in [t["name"] for t in outcomes["find_tools"]["tools"]]
    assert outcomes["cancel_run"]["status"] == "cancelled"
    assert [f["trigger"] for f in outcomes["emit_event"]["fired"]] == ["contract-renewals"]
    assert tagged.structured_content is not None
    assert tagged.structured_content["tags"] == {
        "trigger": "contract-renewals",
        "event_id": outcomes["emit_event"]["event_id"],
    }
