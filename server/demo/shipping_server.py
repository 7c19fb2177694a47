"""A downstream MCP server for ``podium demo``: carrier quotes and bookings for outgoing orders, over stdio.

    python -m server.demo.shipping_server

``podium demo`` imports it as ``podium tools import-mcp shipping -- python -m server.demo.shipping_server`` would,
then calls its tools inside a chain. The carriers' APIs are simulated here with real tariffs; the carriers named in
``SHIPPING_DOWN`` (comma-separated; the demo sets ``skyfreight``) answer every quote with a 503, as an outage would.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

server = MCPServer("shipping", version="1.0.0", instructions="Carrier quotes and bookings for outgoing orders.")

# per carrier: a base fee, a price per started kg, and transit days per zone
TARIFFS: dict[str, dict[str, Any]] = {
    "skyfreight": {"base": 24.0, "per_kg": 6.5, "days": {"domestic": 1, "eu": 2, "world": 3}, "max_kg": 70},
    "roadline": {"base": 9.0, "per_kg": 1.2, "days": {"domestic": 2, "eu": 4, "world": 9}, "max_kg": 1000},
}
ZONES: dict[str, str] = {"DE": "domestic", "FR": "eu", "NL": "eu", "IT": "eu", "ES": "eu", "PL": "eu"}
ZONE_FACTOR = {"domestic": 1.0, "eu": 1.4, "world": 2.6}

Weight = Annotated[float, Field(gt=0, le=1000, description="Parcel weight in kg")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="Destination country (ISO 3166 alpha-2)")]


def _down() -> set[str]:
    return {c.strip() for c in os.environ.get("SHIPPING_DOWN", "").split(",") if c.strip()}


def _quote(carrier: str, weight_kg: float, country: str) -> dict[str, Any]:
    if carrier in _down():
        raise ToolError(f"{carrier} rating API answered 503 Service Unavailable")
    tariff = TARIFFS[carrier]
    if weight_kg > tariff["max_kg"]:
        raise ToolError(f"{carrier} takes parcels up to {tariff['max_kg']} kg, not {weight_kg:g} kg")
    zone = ZONES.get(country, "world")
    price = (tariff["base"] + tariff["per_kg"] * math.ceil(weight_kg)) * ZONE_FACTOR[zone]
    quote_id = "Q-" + hashlib.sha256(f"{carrier}|{weight_kg}|{country}".encode()).hexdigest()[:8].upper()
    return {
        "quote_id": quote_id,
        "carrier": carrier,
        "price_eur": round(price, 2),
        "transit_days": tariff["days"][zone],
        "zone": zone,
    }


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def skyfreight_quote(weight_kg: Weight, country: Country) -> dict[str, Any]:
    """Quote express air freight with SkyFreight (fast, up to 70 kg)."""
    return _quote("skyfreight", weight_kg, country)


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def roadline_quote(weight_kg: Weight, country: Country) -> dict[str, Any]:
    """Quote ground freight with RoadLine (slower, cheaper, up to 1000 kg)."""
    return _quote("roadline", weight_kg, country)


@server.tool()
def book_shipment(
    order_id: Annotated[str, Field(min_length=1, max_length=64)],
    quote_id: Annotated[str, Field(pattern=r"^Q-[0-9A-F]{8}$")],
    carrier: str,
    price_eur: float,
    transit_days: int,
) -> dict[str, Any]:
    """Book the quoted shipment for an order; returns the tracking number. Each call books one parcel."""
    if carrier not in TARIFFS:
        raise ToolError(f"unknown carrier {carrier!r}; carriers: {', '.join(TARIFFS)}")
    tracking = carrier[:3].upper() + hashlib.sha256(f"{order_id}|{quote_id}".encode()).hexdigest()[:10].upper()
    return {
        "order_id": order_id,
        "carrier": carrier,
        "tracking": tracking,
        "price_eur": price_eur,
        "message": f"order {order_id} ships with {carrier} ({transit_days} day(s), {price_eur:.2f} EUR): {tracking}",
    }


if __name__ == "__main__":
    server.run()
