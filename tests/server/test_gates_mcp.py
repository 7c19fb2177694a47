"""Gates through real MCP sessions: await_approval, wait_run on a decision, decide_gate's rules, elicitation."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import ElicitResult

from patterns.gates import decide
from server import Settings, build_server
from storage import Store
from tests.helpers import podium

pytestmark = pytest.mark.anyio

REQUEST: dict[str, Any] = {
    "title": "Renew the ACME contract at +4%",
    "brief": "Current: 120k/yr. Market benchmark: +3-5%. Recommendation: accept.",
    "payload": {"vendor": "ACME", "increase_pct": 4},
    "approvers": ["legal"],
    "sla_s": 3600,
}


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def decide_later(settings: Settings, gate_id: str, decision: str, by: str, delay: float) -> None:
    await anyio.sleep(delay)
    async with Store.open(settings.database_url) as store:  # another connection, as the CLI would be
        await decide(store, gate_id, decision, by, "checked the benchmark")


async def test_await_approval_waits_and_wait_run_returns_when_the_decision_lands(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(client, "await_approval", {**REQUEST, "options": {"wait_s": 0.5}})
        assert opened["status"] == "waiting"
        gate = opened["gate"]
        assert gate["title"] == REQUEST["title"] and gate["approvers"] == ["legal"] and gate["status"] == "pending"
        assert gate["gate_id"] in opened["next_action"] and "podium gates approve" in opened["next_action"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(decide_later, settings, gate["gate_id"], "approve", "legal", 0.5)
            with anyio.fail_after(15):
                done = await call(client, "wait_run", {"run_id": opened["run_id"], "timeout_s": 30})
    assert done["status"] == "succeeded"
    assert done["output"] == {
        "gate_id": gate["gate_id"], "decision": "approve", "payload": REQUEST["payload"], "decided_by": "legal",
        "comment": "checked the benchmark",
    }  # fmt: skip
    assert done["gate"] is None


async def test_a_rejected_request_ends_the_run_rejected(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(client, "await_approval", {**REQUEST, "options": {"wait_s": 10}})
        await decide_later(settings, opened["gate"]["gate_id"], "reject", "legal", 0)
        done = await call(client, "wait_run", {"run_id": opened["run_id"], "timeout_s": 10})
    assert done["status"] == "rejected"
    assert done["error"]["type"] == "gate_rejected"
    assert "do not go ahead" in done["next_action"]


async def test_the_model_can_never_decide_a_gate_through_decide_gate(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(client, "await_approval", {**REQUEST, "options": {"wait_s": 10}})
        refused = await client.call_tool("decide_gate", {"gate_id": opened["gate"]["gate_id"], "decision": "approve"})
        still = await call(client, "get_run", {"run_id": opened["run_id"]})
    assert refused.is_error
    text = refused.content[0].text  # type: ignore[union-attr]
    assert "'local' may not decide gates" in text and "podium gates approve" in text
    assert still["status"] == "waiting"


async def test_a_waiting_run_answers_wait_run_with_waiting_after_the_timeout(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(client, "await_approval", {**REQUEST, "options": {"wait_s": 0}})
        with anyio.fail_after(10):
            again = await call(client, "wait_run", {"run_id": opened["run_id"], "timeout_s": 0.5})
    assert opened["status"] in ("running", "waiting")  # with wait_s 0 the gate may not be open yet
    assert again["status"] == "waiting" and again["gate"]["title"] == REQUEST["title"]


async def test_a_gate_naming_requester_asks_the_human_by_elicitation(settings: Settings, mode: str):
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"decision": "approve", "comment": "fine by me"})

    async with Client(build_server(settings), mode=mode, elicitation_callback=on_elicit) as client:
        done = await call(client, "await_approval", {**REQUEST, "approvers": ["requester"]})
    assert len(asked) == 1 and REQUEST["title"] in asked[0] and "increase_pct" in asked[0]
    assert done["status"] == "succeeded"
    assert done["output"]["decided_by"] == "requester" and done["output"]["comment"] == "fine by me"


async def test_a_declined_elicitation_leaves_the_gate_open_for_other_approvers(settings: Settings, mode: str):
    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    async with Client(build_server(settings), mode=mode, elicitation_callback=on_elicit) as client:
        opened = await call(
            client, "await_approval", {**REQUEST, "approvers": ["requester", "legal"], "options": {"wait_s": 10}}
        )
    assert opened["status"] == "waiting" and opened["gate"]["approvers"] == ["requester", "legal"]


async def test_without_the_capability_a_requester_gate_simply_waits(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(
            client, "await_approval", {**REQUEST, "approvers": ["requester"], "options": {"wait_s": 10}}
        )
    assert opened["status"] == "waiting"


async def test_a_gate_inside_a_chain_gets_what_flows_in(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(
            client,
            "run_chain",
            {"steps": [{"tool": "add"}, {"gate": {"title": "Check the sum", "approvers": ["ana"]}},
                       {"tool": "double", "input": {"value": {"$": "prev.payload.sum"}}}],
             "input": {"a": 2, "b": 3}, "options": {"wait_s": 0.3}},
        )  # fmt: skip
        assert opened["status"] == "waiting"
        await decide_later(settings, opened["gate"]["gate_id"], "approve", "ana", 0)
        done = await call(client, "wait_run", {"run_id": opened["run_id"], "timeout_s": 10})
    assert done["status"] == "succeeded" and done["output"] == {"value": 10}


async def test_an_unanswered_gate_escalates_then_on_timeout_decides(settings: Settings, mode: str):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(
            client,
            "await_approval",
            {**REQUEST, "sla_s": 0.3, "escalate_to": ["general-counsel"], "on_timeout": "approve",
             "options": {"wait_s": 10}},
        )  # fmt: skip
        with anyio.fail_after(15):
            done = await call(client, "wait_run", {"run_id": opened["run_id"], "timeout_s": 10})
    assert done["status"] == "succeeded"
    assert done["output"]["decided_by"] == "system:sla" and done["output"]["decision"] == "approve"
    async with Store.open(settings.database_url) as store:
        history = (await store.gates.get(opened["gate"]["gate_id"])).history
    assert [(e["event"], e.get("to")) for e in history if e["event"] in ("escalated", "decided")] == [
        ("escalated", "general-counsel"),
        ("decided", None),
    ]


async def test_the_command_in_next_action_decides_the_gate_when_run_as_written(
    settings: Settings, mode: str, tmp_path: Path
):
    async with Client(build_server(settings), mode=mode) as client:
        opened = await call(client, "await_approval", REQUEST)
        gate_id = opened["gate"]["gate_id"]
        commands = re.findall(r"`(podium gates [^`]+)`", opened["next_action"])
        assert commands == [f"podium gates approve {gate_id} --as legal", f"podium gates reject {gate_id} --as legal"]
        # a person pastes it where their podium is configured for this database (here: by the environment)
        done = podium(*shlex.split(commands[0])[1:], env={"PODIUM_DATABASE_URL": settings.database_url}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        with anyio.fail_after(15):
            finished = await call(client, "wait_run", {"run_id": opened["run_id"], "timeout_s": 10})
    assert finished["status"] == "succeeded" and finished["output"]["decided_by"] == "legal"


async def test_a_gate_for_the_requester_on_a_client_that_cannot_ask_says_a_person_must_decide_it(
    settings: Settings, mode: str, tmp_path: Path
):
    async with Client(build_server(settings), mode=mode) as client:  # no elicitation callback
        opened = await call(client, "await_approval", {**REQUEST, "approvers": ["requester"]})
        assert opened["status"] == "waiting"
        assert "your client cannot ask them (no elicitation)" in opened["next_action"]
        command = f"podium gates approve {opened['gate']['gate_id']} --as requester"
        assert f"`{command}`" in opened["next_action"]
        done = podium(*shlex.split(command)[1:], env={"PODIUM_DATABASE_URL": settings.database_url}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        with anyio.fail_after(15):
            finished = await call(client, "wait_run", {"run_id": opened["run_id"], "timeout_s": 10})
    assert finished["status"] == "succeeded" and finished["output"]["decided_by"] == "requester"
