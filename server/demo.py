"""``podium demo``: the bundled example workflows, run through the MCP tools exactly as an LLM client would.

It registers ``server/examples/tools.toml``, starts the server in-process, connects a real ``mcp.Client`` and
runs three scenarios from the seed articles: an invoice chain, a vendor-risk fan-out whose slow news source
times out into "data unavailable", and a support-ticket router. The runs stay in the database for
``podium runs list`` / ``podium runs show``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client

from server.app import build_server
from server.config import Settings
from server.render import run_report
from server.results import RunResult

TOOLS_FILE = Path(__file__).parent / "examples" / "tools.toml"

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
class Scenario:
    title: str
    story: str
    tool: str
    arguments: dict[str, Any]
    expect: str


SCENARIOS = (
    Scenario(
        title="Invoice processing: a sequential chain",
        story="Extract the invoice, match it to its purchase order, check the budget, score the risk, and post it "
        "to the ERP. Each step has an output contract; post-to-erp is not idempotent, so its start is made durable "
        "before it runs.",
        tool="run_chain",
        arguments={
            "steps": [
                {"id": "invoice", "tool": "extract-invoice@^1.0", "input": {"text": {"$": "input.text"}}},
                {"id": "po", "tool": "match-po@^1.0", "input": {"invoice": {"$": "steps.invoice"}}},
                {
                    "id": "budget",
                    "tool": "check-budget@^1.0",
                    "input": {"invoice": {"$": "steps.invoice"}, "department": {"$": "steps.po.department"}},
                },
                {
                    "id": "risk",
                    "tool": "score-risk@^1.0",
                    "input": {
                        "invoice": {"$": "steps.invoice"},
                        "po_check": {"$": "steps.po"},
                        "budget_check": {"$": "steps.budget"},
                    },
                },
                {
                    "id": "erp",
                    "tool": "post-to-erp@^1.0",
                    "input": {"invoice": {"$": "steps.invoice"}, "risk": {"$": "steps.risk"}},
                },
            ],
            "input": {"text": INVOICE_TEXT},
        },
        expect="succeeded",
    ),
    Scenario(
        title="Vendor risk: a parallel fan-out with a timeout on every branch",
        story="Five sources are asked at once; the news source is slow, so after 0.5 s its branch becomes "
        "'data unavailable' instead of blocking the others, and the synthesis says so.",
        tool="fan_out",
        arguments={
            "branches": [
                {"tool": "vendor-financials@^1.0"},
                {"tool": "vendor-sanctions@^1.0"},
                {"tool": "vendor-news@^1.0"},
                {"tool": "vendor-performance@^1.0"},
                {"tool": "vendor-contract@^1.0"},
            ],
            "input": {"vendor": "Globex Ltd"},
            "strategy": "best_effort",
            "branch_timeout_s": 0.5,
            "reduce": {
                "tool": "synthesize-risk@^1.0",
                "input": {"results": {"$": "results"}, "vendor": {"$": "input.vendor"}},
            },
        },
        expect="partial",
    ),
    Scenario(
        title="Support ticket: classify, then route to the right handler",
        story="The classifier's category picks the handler; anything unrecognised goes to the general queue.",
        tool="run_chain",
        arguments={
            "steps": [
                {"id": "ticket", "tool": "classify-ticket@^1.0"},
                {
                    "route": {
                        "on": "input.category",
                        "cases": {
                            "billing": {"tool": "handle-billing@^1.0"},
                            "outage": {"tool": "handle-outage@^1.0"},
                            "security": {"tool": "handle-security@^1.0"},
                        },
                        "default": {"tool": "handle-general@^1.0"},
                    }
                },
            ],
            "input": {
                "subject": "Charged twice for March",
                "body": "Hi, my credit card was charged twice for the March invoice. Please refund one of the "
                "payments.",
            },
        },
        expect="succeeded",
    ),
)


async def run_scenario(client: Client, scenario: Scenario) -> RunResult:
    """Start the scenario's run as a model would, and keep calling wait_run while it is running."""
    result = await client.call_tool(scenario.tool, scenario.arguments)
    if result.is_error or result.structured_content is None:
        text = result.content[0].text if result.content else "no content"  # type: ignore[union-attr]
        raise RuntimeError(f"{scenario.tool} failed: {text}")
    run = RunResult.model_validate(result.structured_content)
    while run.status in ("pending", "running"):
        waited = await client.call_tool("wait_run", {"run_id": run.run_id, "timeout_s": 20})
        run = RunResult.model_validate(waited.structured_content)
    return run


async def run_demo(settings: Settings) -> int:
    """Run every scenario; returns 0 when each ended as expected."""
    settings = settings.model_copy(update={"registry": (*settings.registry, str(TOOLS_FILE))})
    print(f"Podium demo — database: {settings.database_url}")
    print(f"registering the example tools from {TOOLS_FILE.name}; connecting an MCP client to the server\n")
    started = time.perf_counter()
    unexpected = 0
    async with Client(build_server(settings)) as client:
        for number, scenario in enumerate(SCENARIOS, 1):
            print(f"== {number}. {scenario.title}")
            print(f"   {scenario.story}")
            print(f"   MCP call: {scenario.tool}\n")
            run = await run_scenario(client, scenario)
            print(run_report(run))
            print(f"output: {_summary(run.output)}\n")
            if run.status != scenario.expect:
                unexpected += 1
                print(f"!! expected {scenario.expect}, got {run.status}\n")
    print(
        f"done in {time.perf_counter() - started:.1f} s. Inspect the runs: podium runs list / podium runs show RUN_ID"
    )
    return 1 if unexpected else 0


def _summary(output: Any) -> str:
    if isinstance(output, dict):
        for key in ("message", "summary", "response"):
            if isinstance(output.get(key), str):
                return str(output[key]).replace("\n", " ")[:300]
    return str(output)[:300]
