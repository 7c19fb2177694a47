"""Published workflows through real MCP sessions (both protocol eras) and the CLI: registered from registry files,
found, shown, validated and run by reference; bad workflows refused before anything runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server import Settings, build_server
from server.demo import TOOLS_FILE
from storage import Store
from tests.helpers import podium as run_podium

pytestmark = pytest.mark.anyio

INVOICE = "INVOICE INV-1042\nFrom: ACME Corp\nTotal: 1,250.00 EUR"


@pytest.fixture
def demo_settings(tmp_path: Path) -> Settings:
    return Settings.load(environ={}, database_url=f"sqlite:///{tmp_path / 'podium.db'}").model_copy(
        update={"registry": (str(TOOLS_FILE),)}
    )


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return dict(json.loads(result.content[0].text))  # type: ignore[union-attr]


async def error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_a_published_workflow_is_found_shown_validated_and_run_by_reference(
    demo_settings: Settings, mode: str
) -> None:
    async with Client(build_server(demo_settings), mode=mode) as client:
        found = await call(client, "find_tools", {"query": "invoice-intake"})
        shown = json.loads((await client.read_resource("podium://workflows/invoice-intake")).contents[0].text)  # type: ignore[union-attr]
        checked = await call(client, "validate", {"workflow": "invoice-intake@^1"})
        run = await call(client, "run_workflow", {"workflow": "invoice-intake", "input": {"text": INVOICE}})
    assert [(t["name"], t["kind"], t["versions"]) for t in found["tools"]] == [
        ("invoice-intake", "workflow", ["1.0.0"])
    ]
    assert shown["version"] == "1.0.0" and shown["allowed_tools"] == ["extract-invoice", "check-budget"]
    assert shown["step"]["chain"][0] == {"tool": "extract-invoice@^1", "id": "inv"}
    assert checked["valid"] is True and checked["problems"] == []
    assert checked["lock"] == {
        "extract-invoice@^1": "1.0.0",
        "check-budget@^1": "1.0.0",
        "workflow:invoice-intake": "1.0.0",
    }
    assert run["status"] == "succeeded", run
    assert run["usage"]["steps"] == 2 and "within_budget" in json.dumps(run["output"])


async def test_bad_workflow_calls_are_refused_before_anything_runs(demo_settings: Settings, mode: str) -> None:
    async with Client(build_server(demo_settings), mode=mode) as client:
        unknown = await error(client, "run_workflow", {"workflow": "invoice-intak"})
        no_version = await error(client, "run_workflow", {"workflow": "invoice-intake@^2", "input": {"text": "x"}})
        bad_input = await error(client, "run_workflow", {"workflow": "invoice-intake", "input": {"txt": INVOICE}})
        neither = await error(client, "validate", {})
        runs = await call(client, "list_runs", {})
    assert unknown.startswith("unknown_tool: unknown workflow 'invoice-intak'; did you mean 'invoice-intake'")
    assert "no version of 'invoice-intake' satisfies '^2'; versions: 1.0.0" in no_version
    assert bad_input.startswith(
        "contract_violation: the input of workflow invoice-intake@1.0.0 breaks its input_schema"
    )
    assert "'text' is a required property" in bad_input
    assert neither.startswith("invalid_input: pass one of `step`")
    assert runs["runs"] == []  # nothing started


def _registry_file(tmp_path: Path, workflow: dict[str, Any]) -> Path:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"workflow": [workflow]}))
    return path


WORKFLOW: dict[str, Any] = {
    "name": "intake",
    "version": "1.0.0",
    "input_schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    "step": {"chain": [{"tool": "extract-invoice@^1"}, {"tool": "match-po@^1", "input": {"invoice": {"$": "prev"}}}]},
}


def podium(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return run_podium(*args, "--db", str(db))


async def test_the_cli_adds_lists_shows_and_validates_workflows_and_refuses_a_bad_one(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    assert podium("tools", "add", str(TOOLS_FILE), db=db).returncode == 0
    good = _registry_file(tmp_path, WORKFLOW)
    added = podium("workflows", "add", str(good), db=db)
    listed = podium("workflows", "list", "--json", db=db)
    shown = podium("workflows", "show", "intake@1", db=db)
    checked = podium("workflows", "validate", str(good), db=db)
    assert added.returncode == 0 and "published workflow intake@1.0.0" in added.stdout, added.stderr
    assert "intake" in [w["name"] for w in json.loads(listed.stdout)["workflows"]]
    assert shown.returncode == 0 and "intake@1.0.0" in shown.stdout and "extract-invoice@^1" in shown.stdout
    assert checked.returncode == 0 and "valid" in checked.stdout

    changed = _registry_file(tmp_path, {**WORKFLOW, "description": "another"})
    conflict = podium("workflows", "add", str(changed), db=db)
    assert conflict.returncode != 0 and "intake@1.0.0 is already registered" in conflict.stderr
    assert "differs in: description" in conflict.stderr

    excluded = _registry_file(tmp_path, {**WORKFLOW, "version": "1.1.0", "allowed_tools": ["extract-*"]})
    refused = podium("workflows", "add", str(excluded), db=db)
    assert (
        refused.returncode != 0 and "match-po@1.0.0, which its allowed_tools (extract-*) do not allow" in refused.stderr
    )

    lacking = {**WORKFLOW, "version": "1.2.0", "input_schema": {"type": "object", "properties": {"body": {}}}}
    gap = podium("workflows", "validate", str(_registry_file(tmp_path, lacking)), db=db)
    assert gap.returncode == 1 and "does not provide text, which its first step (extract-invoice@1.0.0)" in gap.stdout
    async with Store.open(f"sqlite:///{db}") as store:  # nothing refused was published
        assert [w.version for w in await store.workflows.versions("intake")] == ["1.0.0"]


async def test_a_delegation_step_shows_its_child_and_list_runs_finds_children(demo_settings: Settings, mode: str):
    async with Client(build_server(demo_settings), mode=mode) as client:
        run = await call(
            client,
            "run_chain",
            {"steps": [{"workflow": "invoice-intake@^1", "budget": {"max_steps": 5}}], "input": {"text": INVOICE}},
        )
        children = await call(client, "list_runs", {"parent_run_id": run["run_id"]})
        none = await call(client, "list_runs", {"parent_run_id": children["runs"][0]["run_id"]})
    assert run["status"] == "succeeded" and run["usage"]["steps"] == 2
    [child] = run["children"]
    assert child["status"] == "succeeded" and child["workflow"] == "invoice-intake@1.0.0"
    assert [r["run_id"] for r in children["runs"]] == [child["run_id"]] and none["runs"] == []


async def test_a_supervisor_cannot_escape_its_budget_by_starting_runs_under_it(demo_settings: Settings, mode: str):
    intake = {"workflow": "invoice-intake@^1", "input": {"text": INVOICE}, "options": {"budget": {"max_steps": 3}}}
    async with Client(build_server(demo_settings), mode=mode) as client:
        parent = await call(client, "run_workflow", intake)
        child = await call(
            client,
            "run_workflow",
            {**intake, "options": {"parent_run_id": parent["run_id"]}},
        )
        refused = await error(
            client,
            "run_chain",
            {"steps": [{"tool": "extract-invoice"}], "options": {"parent_run_id": parent["run_id"]}},
        )
    assert parent["status"] == "succeeded" and parent["usage"]["steps"] == 2
    # the parent had one step left: the child's second step is refused, naming the parent
    assert child["status"] == "failed" and child["error"]["type"] == "limit_exceeded"
    assert f"run {parent['run_id']} has no steps left to give a child run" in child["error"]["message"]
    assert "limit_exceeded" in refused and "has no steps left to give a child run" in refused


def test_validating_a_registry_file_counts_its_own_tools_and_workflows(tmp_path: Path) -> None:
    done = podium("workflows", "validate", str(TOOLS_FILE), db=tmp_path / "empty.db")  # nothing published
    assert done.returncode == 0, done.stdout + done.stderr
    assert "employee-onboarding@1.0.0: valid" in done.stdout and "invalid" not in done.stdout
    assert "workflow:onboarding-it@^1 -> 1.0.0" in done.stdout


async def test_idempotency_keys_of_delegation_children_are_reserved(demo_settings: Settings, mode: str) -> None:
    async with Client(build_server(demo_settings), mode=mode) as client:
        refused = await error(
            client,
            "run_workflow",
            {"workflow": "invoice-intake", "input": {"text": INVOICE}, "options": {"idempotency_key": "podium:x:0"}},
        )
    assert refused.startswith("invalid_input") and "options.idempotency_key" in refused
    assert "keys starting with 'podium:' are reserved for the child runs of delegation steps" in refused
