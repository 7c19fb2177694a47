"""The demo's downstream scenario: import a real MCP server (``shipping_server``, over stdio), ship four orders
through a chain that calls its tools, and watch a circuit breaker open on the carrier whose API is down, after
which the route sends express orders straight to the other carrier."""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio
from mcp import Client

from registry import Registry
from registry.mcp_import import import_server
from registry.servers import ServerSpec
from server.render import run_report, table
from server.results import RunResult
from storage import Store

TITLE = "Shipping through a downstream MCP server, with a circuit breaker"
STORY = (
    "A small MCP server (server/demo/shipping_server.py) is imported over stdio; its tools become shipping.* in the "
    "registry. Four express orders are quoted and booked. SkyFreight's API is down: the first orders fall back to "
    "RoadLine, the breaker opens after 3 failed calls (the demo's [breaker] min_calls), and the last order's route "
    "skips SkyFreight without calling it."
)
SHIPPING = ServerSpec(
    name="shipping",
    command=(sys.executable, "-m", "server.demo.shipping_server"),
    env={"SHIPPING_DOWN": "skyfreight"},
    timeout_s=30,
)
ORDERS = [("SO-1001", 2.5, "FR"), ("SO-1002", 12.0, "DE"), ("SO-1003", 0.8, "NL"), ("SO-1004", 5.0, "IT")]
PARCEL = {"weight_kg": {"$": "input.weight_kg"}, "country": {"$": "input.country"}}
SHIP_ORDER = [
    {
        "id": "quote",
        "route": {
            "on": "input.service",
            "cases": {
                "express": {
                    "tool": "shipping.skyfreight_quote@^1",
                    "input": PARCEL,
                    "fallback": "shipping.roadline_quote@^1",
                }
            },
            "default": {"tool": "shipping.roadline_quote@^1", "input": PARCEL},
        },
    },
    {
        "tool": "shipping.book_shipment@^1",
        "input": {
            "order_id": {"$": "run.input.order_id"},
            "quote_id": {"$": "steps.quote.quote_id"},
            "carrier": {"$": "steps.quote.carrier"},
            "price_eur": {"$": "steps.quote.price_eur"},
            "transit_days": {"$": "steps.quote.transit_days"},
        },
    },
]


async def run_shipping(client: Client, database_url: str) -> list[RunResult]:
    """Import the server, then ship the orders through ``run_chain``; returns the runs."""
    command = " ".join(SHIPPING.command or ())
    print(f"   a user would run: podium tools import-mcp shipping --env SHIPPING_DOWN=skyfreight -- {command}")
    async with Store.open(database_url) as store:
        for report in await import_server(Registry(store), SHIPPING):
            print(f"   imported {report.name}@{report.version} ({report.change})")
    print("   MCP call: run_chain, once per order\n")
    runs = []
    for number, (order_id, weight, country) in enumerate(ORDERS, 1):
        if number == len(ORDERS):
            await _breaker_open(database_url, "shipping.skyfreight_quote@1.0.0")
        order = {"order_id": order_id, "service": "express", "weight_kg": weight, "country": country}
        result = await client.call_tool("run_chain", {"steps": SHIP_ORDER, "input": order})
        if result.is_error or result.structured_content is None:
            text = result.content[0].text if result.content else "no content"  # type: ignore[union-attr]
            raise RuntimeError(f"run_chain failed: {text}")
        run = RunResult.model_validate(result.structured_content)
        runs.append(run)
        message = run.output["message"] if isinstance(run.output, dict) else run.output
        print(f"   {order_id}: {run.status}: {message}")
    print()
    print(run_report(runs[-1]))
    async with Store.open(database_url) as store:
        rows = [[b.tool, b.state, b.opens, b.reason or ""] for b in await store.breakers.all()]
    print("\npodium breakers list:")
    print(table(["TOOL", "STATE", "OPENS", "REASON"], rows))
    return runs


async def _breaker_open(database_url: str, tool: str) -> None:
    """Wait (at most 5 s) until the server's scheduler has opened ``tool``'s breaker: it runs four times a second."""
    async with Store.open(database_url) as store:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(b.tool == tool and b.state == "open" for b in await store.breakers.all()):
                print(f"   the circuit breaker of {tool} opened: the next express order is routed to RoadLine")
                return
            await anyio.sleep(0.05)
    print(f"   (the circuit breaker of {tool} had not opened within 5 s)")


def summary(runs: list[RunResult]) -> dict[str, Any]:
    """What the scenario shows, for the demo's verdict: every order booked, the last without SkyFreight."""
    last = runs[-1]
    called = {step.tool for step in last.steps}
    return {
        "booked": sum(r.status == "succeeded" for r in runs),
        "skipped_down_carrier": "shipping.skyfreight_quote" not in called,
    }
