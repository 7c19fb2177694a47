"""Contract renewal tools for the seed's contract-amendment workflow: draft, amend, send for signature."""

from __future__ import annotations

import hashlib
from typing import Any

# A small book of contracts coming up for renewal, and what the market pays for the same services.
CONTRACTS: dict[str, dict[str, Any]] = {
    "C-1001": {
        "vendor": "ACME Corp",
        "service": "industrial widgets",
        "annual_value": 120_000.0,
        "currency": "EUR",
        "ends": "2026-12-31",
        "term_months": 12,
        "requested_increase_pct": 6.0,
        "notice_days": 60,
        "auto_renew": True,
        "liability_cap_months": 3,
    },
    "C-2002": {
        "vendor": "Globex Ltd",
        "service": "logistics",
        "annual_value": 48_000.0,
        "currency": "EUR",
        "ends": "2027-03-31",
        "term_months": 24,
        "requested_increase_pct": 2.5,
        "notice_days": 90,
        "auto_renew": False,
        "liability_cap_months": 12,
    },
}
BENCHMARKS: dict[str, tuple[float, float]] = {"industrial widgets": (3.0, 4.0), "logistics": (2.0, 3.5)}
STANDARD_LIABILITY_CAP_MONTHS = 12
CURRENT_TERMS = ("annual_value", "currency", "ends", "term_months", "liability_cap_months")


def draft_renewal(contract_id: str) -> dict[str, Any]:
    """Prepare the brief a legal reviewer decides on: current terms, the market, a recommendation, risk flags."""
    contract = CONTRACTS.get(contract_id)
    if contract is None:
        raise ValueError(f"unknown contract {contract_id!r}; known: {', '.join(sorted(CONTRACTS))}")
    low, high = BENCHMARKS[contract["service"]]
    asked = contract["requested_increase_pct"]
    recommended = round(min(asked, high), 2)
    flags = []
    if asked > high:
        flags.append(f"requested +{asked}% is above the market range (+{low}% to +{high}%)")
    if contract["auto_renew"]:
        flags.append(f"auto-renews unless notice is given {contract['notice_days']} days before {contract['ends']}")
    if contract["liability_cap_months"] < STANDARD_LIABILITY_CAP_MONTHS:
        flags.append(
            f"liability cap of {contract['liability_cap_months']} months' fees is below our standard "
            f"{STANDARD_LIABILITY_CAP_MONTHS}"
        )
    return {
        "contract_id": contract_id,
        "vendor": contract["vendor"],
        "current": {
            k: contract[k] for k in ("annual_value", "currency", "ends", "term_months", "liability_cap_months")
        },
        "requested_increase_pct": asked,
        "market_range_pct": [low, high],
        "recommended": {
            "increase_pct": recommended,
            "term_months": max(contract["term_months"], 24),
            "liability_cap_months": max(contract["liability_cap_months"], STANDARD_LIABILITY_CAP_MONTHS),
        },
        "new_annual_value": round(contract["annual_value"] * (1 + recommended / 100), 2),
        "risk_flags": flags,
    }


def generate_amendment(contract_id: str, vendor: str, recommended: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Write the amendment for the approved terms (as a reviewer may have modified them)."""
    contract = CONTRACTS[contract_id]
    increase = float(recommended["increase_pct"])
    value = round(contract["annual_value"] * (1 + increase / 100), 2)
    clauses = [
        f"1. The annual fee becomes {value:,.2f} {contract['currency']} (+{increase}%).",
        f"2. The term is extended by {recommended['term_months']} months from {contract['ends']}.",
        f"3. Liability is capped at {recommended['liability_cap_months']} months' fees.",
    ]
    digest = hashlib.sha256(f"{contract_id}|{increase}|{recommended['term_months']}".encode()).hexdigest()[:8]
    return {
        "amendment_id": f"AMD-{contract_id}-{digest.upper()}",
        "contract_id": contract_id,
        "vendor": vendor,
        "annual_value": value,
        "currency": contract["currency"],
        "increase_pct": increase,
        "text": f"Amendment to contract {contract_id} with {vendor}\n" + "\n".join(clauses),
    }


def send_for_signature(amendment_id: str, vendor: str, **_: Any) -> dict[str, Any]:
    """Send the amendment to the counterparty for signature (not idempotent: each call sends an envelope)."""
    envelope = hashlib.sha256(f"envelope|{amendment_id}".encode()).hexdigest()[:10].upper()
    return {
        "envelope_id": f"ENV-{envelope}",
        "amendment_id": amendment_id,
        "sent_to": f"contracts@{vendor.split()[0].lower()}.example",
        "status": "sent",
    }
