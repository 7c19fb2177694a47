"""``podium demo``: the bundled example workflows, run through the MCP tools exactly as an LLM client would.

It registers ``server/demo/tools.toml``, starts the server in-process, connects a real ``mcp.Client`` and
runs five scenarios from the seed articles, each a workflow published in that file and started with
``run_workflow``: an invoice chain, a vendor-risk fan-out whose slow news source times out into "data
unavailable", a support-ticket router, a contract amendment with two human gates (which the demo decides itself,
saying what a human would run), and an employee onboarding whose coordinator delegates to specialist workflows
as child runs. The runs stay in the database for
``podium runs list`` / ``podium runs show``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client

from patterns import gates
from registry.models import BreakerSettings
from server.app import build_server
from server.config import Settings
from server.demo import renewals, shipping
from server.render import run_report
from server.results import RunResult
from server.runtree import run_tree_report
from storage import Store

TOOLS_FILE = Path(__file__).parent / "tools.toml"

INVOICE_TEXT = """INVOICE
From: ACME Corp
Invoice #: INV-2026-0042
Date: 2026-03-02
PO: PO-1001
Terms: Net 30

2 x Widget @ 12.50
10 x Gadget Pro @ 99.00
1 x Installation service @ 250.00

Subtotal: 1,265.00
Total: 1,265.00 EUR
"""


@dataclass(frozen=True)
class Decision:
    """What the demo does in place of a human at a gate."""

    approver: str
    decision: str
    comment: str
    edit: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Scenario:
    title: str
    story: str
    tool: str
    arguments: dict[str, Any]
    expect: str
    decisions: tuple[Decision, ...] = ()


def _cap_increase(draft: Any) -> Any:
    """Legal's edit: cap the increase at 3.5% (the middle of the market range)."""
    return {**draft, "recommended": {**draft["recommended"], "increase_pct": 3.5}}


NEW_HIRE = {
    "name": "Dana Ruiz",
    "role": "engineer",
    "department": "platform",
    "manager": "Lee Park",
    "level": "L3",
    "salary": 78_000,
    "start_date": "2027-01-11",
    "location": "Berlin",
}

SCENARIOS = (
    Scenario(
        title="Invoice processing: a sequential chain",
        story="Extract the invoice, match it to its purchase order, check the budget, score the risk, and post it "
        "to the ERP. Each step has an output contract; post-to-erp is not idempotent, so its start is made durable "
        "before it runs.",
        tool="run_workflow",
        arguments={"workflow": "invoice-processing@^1", "input": {"text": INVOICE_TEXT}},
        expect="succeeded",
    ),
    Scenario(
        title="Vendor risk: a parallel fan-out with a timeout on every branch",
        story="Five sources are asked at once; the news source is slow, so after 0.5 s its branch becomes "
        "'data unavailable' instead of blocking the others, and the synthesis says so.",
        tool="run_workflow",
        arguments={"workflow": "vendor-risk@^1", "input": {"vendor": "Globex Ltd"}},
        expect="partial",
    ),
    Scenario(
        title="Support ticket: classify, then route to the right handler",
        story="The classifier's category picks the handler; anything unrecognised goes to the general queue.",
        tool="run_workflow",
        arguments={
            "workflow": "support-triage@^1",
            "input": {
                "subject": "Charged twice for March",
                "body": "Hi, my credit card was charged twice for the March invoice. Please refund one of the "
                "payments.",
            },
        },
        expect="succeeded",
    ),
    Scenario(
        title="Contract amendment: two human gates with SLAs and escalation",
        story="An agent drafts the renewal brief; legal approves, modifies or rejects it; the amendment is written; "
        "the business owner confirms the commercial terms; only then is it sent for signature. Each gate has a "
        "4-hour SLA and an escalation path. A waiting run holds no task, however long the humans take.",
        tool="run_workflow",
        arguments={"workflow": "contract-amendment@^1", "input": {"contract_id": "C-1001"}, "options": {"wait_s": 5}},
        expect="succeeded",
        decisions=(
            Decision("legal", "modify", "cap the increase at 3.5%, mid-market", _cap_increase),
            Decision("procurement-owner", "approve", "fee and term confirmed"),
        ),
    ),
    Scenario(
        title="Employee onboarding: a coordinator delegating to specialists",
        story="The coordinator starts IT and finance as child runs in parallel, each a workflow with its own tools "
        "and a budget drawn from the coordinator's; the kickoff waits for IT (it needs the new account); the "
        "checklist assembles what they did. Each child run is drawn under the step that started it.",
        tool="run_workflow",
        arguments={"workflow": "employee-onboarding@^1", "input": NEW_HIRE},
        expect="succeeded",
    ),
)


async def run_scenario(client: Client, scenario: Scenario, database_url: str) -> RunResult:
    """Start the scenario's run as a model would and follow it with wait_run; at each gate, decide as the
    scenario's human would, through the store, as `podium gates approve` does."""
    result = await client.call_tool(scenario.tool, scenario.arguments)
    if result.is_error or result.structured_content is None:
        text = result.content[0].text if result.content else "no content"  # type: ignore[union-attr]
        raise RuntimeError(f"{scenario.tool} failed: {text}")
    run = RunResult.model_validate(result.structured_content)
    return await _follow(client, run, list(scenario.decisions), database_url)


async def _follow(client: Client, run: RunResult, decisions: list[Decision], database_url: str) -> RunResult:
    """Wait for ``run`` with wait_run; at each gate, decide as the next of ``decisions``' humans would."""
    while run.status in ("pending", "running") or run.status == "waiting" and decisions:
        if run.status == "waiting" and run.gate is not None:
            await _decide_as_a_human(database_url, run.gate.gate_id, run.gate.title, decisions.pop(0))
        waited = await client.call_tool("wait_run", {"run_id": run.run_id, "timeout_s": 20})
        run = RunResult.model_validate(waited.structured_content)
    return run


async def _decide_as_a_human(database_url: str, gate_id: str, title: str, decision: Decision) -> None:
    async with Store.open(database_url) as store:
        gate = await store.gates.get(gate_id)
        payload = decision.edit(gate.payload) if decision.edit is not None else None
        verb = "approve" if decision.decision == "modify" else decision.decision
        shown = f" --payload '{json.dumps(payload)}'" if payload is not None else ""
        print(f"   gate open: {title!r} (asks {', '.join(gate.current_approvers)}, SLA 4 h, then escalates)")
        print(f"   a human would now run: podium gates {verb} {gate_id} --as {decision.approver}{shown[:60]}…")
        print(f"   the demo decides for them: {decision.decision} as {decision.approver!r} ({decision.comment})")
        await gates.decide(store, gate_id, decision.decision, decision.approver, decision.comment, payload)


async def run_demo(settings: Settings) -> int:
    """Run every scenario; returns 0 when each ended as expected."""
    settings = settings.model_copy(update={"registry": (*settings.registry, str(TOOLS_FILE))})
    print(f"Podium demo — database: {settings.database_url}")
    print(f"registering the example tools from {TOOLS_FILE.name}; connecting an MCP client to the server\n")
    started = time.perf_counter()
    unexpected = 0
    # the demo's breakers open after 3 calls (the shipping scenario's down carrier); a server's default is 10
    settings = settings.model_copy(update={"breaker": BreakerSettings(min_calls=3, failure_rate=0.5, open_s=30)})
    async with Client(build_server(settings)) as client:
        for number, scenario in enumerate(SCENARIOS, 1):
            print(f"== {number}. {scenario.title}")
            print(f"   {scenario.story}")
            print(f"   MCP call: {scenario.tool}\n")
            run = await run_scenario(client, scenario, settings.database_url)
            print(await _report(settings.database_url, run))
            print(f"output: {_summary(run.output)}\n")
            if run.status != scenario.expect:
                unexpected += 1
                print(f"!! expected {scenario.expect}, got {run.status}\n")
        print(f"== {len(SCENARIOS) + 1}. {renewals.TITLE}")
        print(f"   {renewals.STORY}")
        contract = next(s for s in SCENARIOS if s.arguments.get("workflow", "").startswith("contract-amendment"))

        async def follow(run_id: str) -> RunResult:
            now = await client.call_tool("get_run", {"run_id": run_id})  # parked at its first gate, or about to be
            run = RunResult.model_validate(now.structured_content)
            return await _follow(client, run, list(contract.decisions), settings.database_url)

        answers, renewed = await renewals.run_renewals(client, follow)
        for run in renewed:
            print(f"   run {run.run_id}: {run.status}: {_summary(run.output)}")
        counts = [(len(a["fired"]), [s["reason"] for s in a["suppressed"]]) for a in answers]
        if counts != [(1, []), (0, ["duplicate"]), (0, ["cooldown"]), (1, [])] or any(
            r.status != "succeeded" for r in renewed
        ):
            unexpected += 1
            print(f"!! expected two runs, one duplicate and one cooldown, both runs succeeded: {counts}")
        print()
        print(f"== {len(SCENARIOS) + 2}. {shipping.TITLE}")
        print(f"   {shipping.STORY}")
        shown = shipping.summary(await shipping.run_shipping(client, settings.database_url))
        if shown["booked"] != len(shipping.ORDERS) or not shown["skipped_down_carrier"]:
            unexpected += 1
            print(f"!! expected every order booked and the last one routed past SkyFreight: {shown}")
        print()
    print(
        f"done in {time.perf_counter() - started:.1f} s. Inspect the runs: podium runs list / podium runs show RUN_ID"
    )
    return 1 if unexpected else 0


async def _report(database_url: str, run: RunResult) -> str:
    """The run as ``podium runs show`` draws it, child runs nested; the MCP result's own when it has none."""
    if not run.children:
        return run_report(run)
    async with Store.open(database_url) as store:
        record = await store.get_run(run.run_id)
        return await run_tree_report(store, record, await store.get_steps(run.run_id, payloads=False))


def _summary(output: Any) -> str:
    if isinstance(output, dict):
        for key in ("message", "summary", "response"):
            if isinstance(output.get(key), str):
                return str(output[key]).replace("\n", " ")[:300]
    return str(output)[:300]
