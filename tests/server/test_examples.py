"""The ``podium demo`` example tools: each function, the registry file's contracts, and the demo's step trees."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from patterns.engine import Engine
from registry import PythonProvider, Registry, ToolSpec
from registry.files import load_registry_file
from registry.providers import load_target
from server.demo import INVOICE_TEXT, SCENARIOS, contracts, invoice, onboarding, support, vendor_risk
from server.demo.runner import NEW_HIRE
from server.results import child_info

TOOLS_FILE = Path(invoice.__file__).with_name("tools.toml")

ACME_TEXT = INVOICE_TEXT  # the demo's own invoice

GLOBEX_TEXT = """Globex Ltd
Invoice number GX-90311
Invoice date: March 5, 2026
Due: 19.04.2026
- 3 x Server rack @ $4,200.00
- 1x Support plan @ $900.00 = 900.00
Tax (8%): $1,080.00
Amount due: $14,580.00
"""

BILLING_TICKET = {
    "subject": "Charged twice for March",
    "body": "Hi, my credit card was charged twice for the March invoice. Please refund one of the payments.",
}


def acme() -> dict[str, Any]:
    return invoice.extract(ACME_TEXT)


def globex() -> dict[str, Any]:
    return invoice.extract(GLOBEX_TEXT)


# --- invoice chain ----------------------------------------------------------------------------------------------


def test_extract_reads_every_field_of_a_labelled_invoice() -> None:
    assert acme() == {
        "vendor": "ACME Corp",
        "invoice_number": "INV-2026-0042",
        "date": "2026-03-02",
        "due_date": None,
        "po_number": "PO-1001",
        "payment_terms_days": 30,
        "currency": "EUR",
        "line_items": [
            {"description": "Widget", "quantity": 2.0, "unit_price": 12.5, "amount": 25.0},
            {"description": "Gadget Pro", "quantity": 10.0, "unit_price": 99.0, "amount": 990.0},
            {"description": "Installation service", "quantity": 1.0, "unit_price": 250.0, "amount": 250.0},
        ],
        "subtotal": 1265.0,
        "tax": None,
        "total": 1265.0,
        "warnings": [],
    }


def test_extract_handles_symbols_named_months_dotted_dates_and_tax() -> None:
    data = globex()

    assert data["vendor"] == "Globex Ltd"  # the first line, with no From: line
    assert data["invoice_number"] == "GX-90311"
    assert data["date"] == "2026-03-05"
    assert data["due_date"] == "2026-04-19"
    assert data["currency"] == "USD"
    assert [item["amount"] for item in data["line_items"]] == [12600.0, 900.0]
    assert data["tax"] == 1080.0
    assert data["total"] == 14580.0
    assert data["po_number"] is None
    assert data["warnings"] == []  # items + tax add up to the total


def test_extract_parses_european_amounts_and_warns_when_items_do_not_add_up() -> None:
    data = invoice.extract("Vendor: Initech GmbH\nInvoice no. 2026/117\n3 x Chair @ 100,00\nTotal: EUR 1.234,50\n")

    assert data["vendor"] == "Initech GmbH"
    assert data["invoice_number"] == "2026/117"
    assert data["total"] == 1234.5
    assert data["currency"] == "EUR"
    assert data["line_items"][0]["amount"] == 300.0
    assert "line items sum to 300.00 but the total is 1,234.50" in data["warnings"]
    assert "no invoice date found" in data["warnings"]


def test_extract_fails_clearly_without_a_total() -> None:
    with pytest.raises(ValueError, match="no invoice total found"):
        invoice.extract("From: ACME Corp\nSubtotal: 100.00\n2 x Widget @ 50.00")


def test_match_po_matches_an_invoice_within_the_remaining_amount() -> None:
    result = invoice.match_po(acme())

    assert result["po"] == "PO-1001"
    assert result["department"] == "operations"
    assert result["po_remaining"] == 3800.0
    assert result["matched"] is True
    assert result["issues"] == []


def test_match_po_finds_the_vendors_po_and_reports_an_overrun() -> None:
    result = invoice.match_po(globex())

    assert result["po"] == "PO-2001"
    assert result["matched"] is False
    assert result["issues"] == ["invoice total 14,580.00 USD exceeds the 1,500.00 USD remaining on PO-2001"]


@pytest.mark.parametrize(
    ("changes", "issue"),
    [
        ({"currency": "USD"}, "invoice currency USD does not match PO-1001's EUR"),
        ({"vendor": "Umbrella Supplies", "po_number": None}, "no open purchase order for vendor 'Umbrella Supplies'"),
        ({"po_number": "PO-9999"}, "the invoice cites PO-9999, which is not a known purchase order"),
        ({"po_number": "PO-2001"}, "PO-2001 is with Globex Ltd, not ACME Corp"),
        ({"vendor": "Initech GmbH", "po_number": "PO-0950", "total": 100.0}, "PO-0950 is closed"),
    ],
)
def test_match_po_names_each_issue(changes: dict[str, Any], issue: str) -> None:
    result = invoice.match_po({**acme(), **changes})

    assert result["matched"] is False
    assert issue in result["issues"]


def test_match_po_needs_a_total() -> None:
    with pytest.raises(ValueError, match="no numeric 'total'"):
        invoice.match_po({"vendor": "ACME Corp"})


def test_check_budget_passes_a_normal_invoice() -> None:
    result = invoice.check_budget(acme(), "operations")

    assert result == {
        "department": "operations",
        "amount_eur": 1265.0,
        "budget_remaining_eur": 40000.0,
        "budget_after_eur": 38735.0,
        "within_budget": True,
        "vendor_average_eur": 1100.0,
        "ratio_to_average": 1.15,
        "anomalies": [],
    }


def test_check_budget_flags_an_amount_over_twice_the_average_and_an_exhausted_budget() -> None:
    result = invoice.check_budget(globex())  # department from the vendor's history

    assert result["department"] == "it"
    assert result["amount_eur"] == 13413.6
    assert result["within_budget"] is False
    assert result["anomalies"] == ["amount 13,413.60 EUR is 2.24x the vendor's average of 6,000.00 EUR (threshold 2x)"]


def test_check_budget_flags_duplicates_new_vendors_and_unknown_currencies() -> None:
    duplicate = invoice.check_budget({**acme(), "invoice_number": "INV-2026-0007"})
    assert duplicate["anomalies"] == ["invoice INV-2026-0007 from ACME Corp was already posted: possible duplicate"]

    newcomer = invoice.check_budget({"vendor": "Nakatomi Trading", "total": 10.0, "currency": "JPY"})
    assert newcomer["department"] == "general"
    assert newcomer["within_budget"] is False
    assert newcomer["amount_eur"] is None
    assert newcomer["anomalies"] == [
        "cannot convert JPY to EUR; budget not verified",
        "first invoice from Nakatomi Trading: no payment history",
    ]


def test_check_budget_rejects_an_unknown_department() -> None:
    with pytest.raises(ValueError, match="unknown department 'marketing'; known: facilities, general, it, operations"):
        invoice.check_budget(acme(), "marketing")


def test_score_risk_auto_approves_a_clean_invoice() -> None:
    data = acme()
    result = invoice.score_risk(data, invoice.match_po(data), invoice.check_budget(data, "operations"))

    assert result == {
        "risk": "low",
        "score": 0.0,
        "reasons": ["PO matched, within budget, no anomalies"],
        "decision": "auto_approve",
        "approver": None,
    }


def test_score_risk_sends_a_risky_invoice_to_a_human_with_every_reason() -> None:
    data = globex()
    result = invoice.score_risk(data, invoice.match_po(data), invoice.check_budget(data))

    assert result["risk"] == "high"
    assert result["score"] == 1.0
    assert result["decision"] == "needs_approval"
    assert result["approver"] == "finance controller"
    assert [reason.split(":")[0] for reason in result["reasons"]] == [
        "purchase order",
        "budget",
        "anomaly",
        "large amount",
    ]


def test_score_risk_counts_checks_that_did_not_run() -> None:
    result = invoice.score_risk(acme())

    assert result["score"] == 0.5
    assert result["risk"] == "medium"
    assert result["reasons"] == ["no purchase-order check was run", "no budget check was run"]


def test_post_to_erp_posts_an_auto_approved_invoice_with_a_deterministic_id() -> None:
    data = acme()
    first = invoice.post_to_erp(data, {"decision": "auto_approve"})
    again = invoice.post_to_erp(data, {"decision": "auto_approve"})
    other = invoice.post_to_erp({**data, "invoice_number": "INV-2026-0043"}, {"decision": "auto_approve"})

    assert first == again
    assert re.fullmatch(r"ERP-[0-9A-F]{12}", first["posting_id"])
    assert other["posting_id"] != first["posting_id"]
    assert first["status"] == "posted"
    assert first["payment_scheduled"] is True
    assert first["payment_terms_days"] == 30
    assert first["payment_date"] == "2026-04-01"  # 2026-03-02 + 30 days


def test_post_to_erp_parks_an_invoice_that_needs_approval_until_someone_approves() -> None:
    data = globex()
    risk = {"decision": "needs_approval", "approver": "finance controller"}

    parked = invoice.post_to_erp(data, risk)
    posted = invoice.post_to_erp(data, risk, approved_by="dana@example.com")

    assert parked["status"] == "parked"
    assert parked["payment_scheduled"] is False
    assert "awaits approval by the finance controller" in parked["message"]
    assert posted["status"] == "posted"
    assert posted["approved_by"] == "dana@example.com"
    assert posted["payment_date"] == "2026-04-19"  # the due date on the invoice wins
    assert posted["payment_terms_days"] == 45  # the vendor's usual terms


def test_post_to_erp_without_an_invoice_date_leaves_the_payment_date_open() -> None:
    result = invoice.post_to_erp({"vendor": "ACME Corp", "total": 5.0, "currency": "EUR"}, approved_by="dana")

    assert result["payment_date"] is None
    assert "payment date to be set" in result["message"]


# --- vendor risk fan-out ----------------------------------------------------------------------------------------


def all_sources(vendor: str, news: dict[str, Any] | None) -> list[dict[str, Any] | None]:
    return [
        vendor_risk.financials(vendor),
        vendor_risk.sanctions(vendor),
        news,
        vendor_risk.performance(vendor),
        vendor_risk.contract_terms(vendor),
    ]


@pytest.mark.parametrize("vendor", ["ACME Corp", "Globex", "initech gmbh", "Umbrella Supplies", "Soylent Foods Inc."])
def test_every_sync_source_scores_every_known_vendor(vendor: str) -> None:
    for fn, source in [
        (vendor_risk.financials, "financials"),
        (vendor_risk.sanctions, "sanctions"),
        (vendor_risk.performance, "performance"),
        (vendor_risk.contract_terms, "contract"),
    ]:
        result = fn(vendor)
        assert result["source"] == source
        assert result["vendor"] in {v["name"] for v in vendor_risk.VENDORS.values()}
        assert 0 <= result["score"] <= 1
        assert result["evidence"]


def test_financials_distinguish_strong_from_weak_vendors() -> None:
    assert vendor_risk.financials("Globex Ltd")["score"] == 0.12
    weak = vendor_risk.financials("Initech GmbH")
    assert weak["score"] == 0.79
    assert "high leverage: debt/equity 2.8" in weak["evidence"]
    unknown = vendor_risk.financials("Nobody Ltd")
    assert unknown["credit_score"] is None
    assert unknown["score"] == 0.6


def test_sanctions_screening_tells_exact_partial_and_no_matches_apart() -> None:
    exact = vendor_risk.sanctions("Tyrell Trading FZE")
    partial = vendor_risk.sanctions("Umbrella Supplies")
    clear = vendor_risk.sanctions("ACME Corp")

    assert (exact["status"], exact["score"]) == ("match", 1.0)
    assert (partial["status"], partial["score"]) == ("possible_match", 0.6)
    assert partial["matches"][0]["entity"] == "Umbrella Holdings International"
    assert (clear["status"], clear["score"], clear["matches"]) == ("clear", 0.0, [])
    assert vendor_risk.sanctions("Initech GmbH")["score"] == 0.15  # one regulatory finding


def test_performance_and_contract_review() -> None:
    assert vendor_risk.performance("Globex Ltd")["score"] == 0.79
    assert vendor_risk.performance("Umbrella Supplies")["metrics"] == {}
    contract = vendor_risk.contract_terms("Initech GmbH")
    assert contract["score"] == 1.0
    assert {d["term"] for d in contract["deviations"] if d["severity"] == "major"} == {
        "liability_cap_multiple",
        "data_protection_addendum",
    }
    assert vendor_risk.contract_terms("ACME Corp")["deviations"] == []


@pytest.mark.anyio
async def test_news_scores_sentiment_after_its_delay() -> None:
    globex_news = await vendor_risk.news("Globex Ltd", delay_s=0)
    quiet = await vendor_risk.news("Umbrella Supplies", delay_s=0)

    assert globex_news["source"] == "news"
    assert globex_news["score"] == 0.73
    assert globex_news["sentiment"] == -0.33
    assert len(globex_news["articles"]) == 3
    assert quiet["sentiment"] is None
    assert quiet["evidence"] == ["no news coverage found for Umbrella Supplies"]


@pytest.mark.anyio
async def test_synthesize_weights_all_sources_and_explains_strong_financials_against_negative_news() -> None:
    result = vendor_risk.synthesize(all_sources("Globex Ltd", await vendor_risk.news("Globex Ltd", delay_s=0)))

    assert result["vendor"] == "Globex Ltd"  # from the reports
    assert result["score"] == 0.313
    assert result["rating"] == "medium"
    assert result["missing"] == []
    assert result["coverage"] == 1.0
    concerns = {d["concerning"]: d for d in result["disagreements"]}
    assert sorted(concerns) == ["news", "performance"]
    assert concerns["news"]["explanation"].startswith("Financials look strong (0.12)")
    assert "but news sentiment is negative (0.73)" in concerns["news"]["explanation"]
    assert result["manual_review"] is True  # performance is a red flag
    assert result["recommendation"] == "manual_review"


def test_synthesize_names_missing_sources_as_data_unavailable() -> None:
    result = vendor_risk.synthesize(all_sources("Globex Ltd", None), vendor="Globex Ltd")

    assert result["missing"] == [{"source": "news", "note": "data unavailable — manual review recommended"}]
    assert "news" not in result["sources"]
    assert result["coverage"] == 0.85
    assert result["score"] == 0.239  # weighted over the 0.85 that answered
    assert result["recommendation"] == "manual_review"
    assert "Missing: news — data unavailable — manual review recommended." in result["summary"]


@pytest.mark.anyio
async def test_synthesize_approves_a_clean_vendor_and_rejects_a_sanctioned_one() -> None:
    soylent = vendor_risk.synthesize(all_sources("Soylent Foods", await vendor_risk.news("Soylent Foods", delay_s=0)))
    tyrell = vendor_risk.synthesize(all_sources("Tyrell Trading FZE", None))

    assert (soylent["rating"], soylent["recommendation"], soylent["manual_review"]) == ("low", "approve", False)
    assert (tyrell["rating"], tyrell["recommendation"]) == ("high", "reject")
    assert tyrell["score"] >= 0.9


def test_synthesize_places_reports_without_a_source_by_position() -> None:
    reports = all_sources("ACME Corp", None)
    anonymous: list[dict[str, Any] | None] = [
        {k: v for k, v in r.items() if k != "source"} if r else None for r in reports
    ]

    assert vendor_risk.synthesize(anonymous)["sources"] == vendor_risk.synthesize(reports)["sources"]


def test_synthesize_needs_at_least_one_report() -> None:
    with pytest.raises(ValueError, match="nothing to synthesize"):
        vendor_risk.synthesize([None, None])


# --- support router ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "category", "priority"),
    [
        (BILLING_TICKET["subject"], BILLING_TICKET["body"], "billing", "high"),
        ("Question about my invoice", "Where can I find last month's invoice?", "billing", "normal"),
        ("Dashboard down for all users", "Since 09:10 the dashboard returns 502 in production.", "outage", "urgent"),
        ("API timing out", "Some requests are timing out.", "outage", "high"),
        ("Suspicious login", "Someone logged in from abroad; my account was hacked.", "security", "urgent"),
        ("Phishing email", "I received a phishing email with your logo.", "security", "high"),
        ("Export to CSV?", "How do I export my reports?", "general", "low"),
        ("URGENT: export to CSV", "How do I export my reports?", "general", "normal"),
    ],
)
def test_classify_picks_category_and_priority(subject: str, body: str, category: str, priority: str) -> None:
    result = support.classify(subject, body)

    assert (result["category"], result["priority"]) == (category, priority)
    assert (result["subject"], result["body"]) == (subject, body)
    assert 0 <= result["confidence"] <= 1
    assert (result["keywords"] == []) == (category == "general")


def test_classify_counts_a_phrase_once() -> None:
    result = support.classify(**BILLING_TICKET)

    assert result["keywords"] == ["invoice", "refund", "charged twice", "credit card"]
    assert result["confidence"] == 1.0


@pytest.mark.parametrize(
    ("ticket", "queue", "expect"),
    [
        (BILLING_TICKET, "billing-ops", "refund the duplicate"),
        ({"subject": "Site down", "body": "Everything returns 503 for everyone"}, "sre-oncall", "503 error"),
        (
            {"subject": "Phishing", "body": "A phishing mail asks for my password"},
            "security-incident-response",
            "as an attachment",
        ),
        ({"subject": "Hello", "body": "Do you have a mobile app?"}, "support-tier1", "help.example.com"),
    ],
)
def test_each_handler_accepts_classify_output_and_drafts_a_reply(
    ticket: dict[str, str], queue: str, expect: str
) -> None:
    classified = support.classify(**ticket)
    handler = getattr(support, classified["category"])

    result = handler(**classified)

    assert result["queue"] == queue
    assert result["category"] == classified["category"]
    assert result["priority"] == classified["priority"]
    assert result["sla_hours"] == support.SLA_HOURS[classified["priority"]]
    assert expect in result["response"] or any(expect in action for action in result["actions"])
    assert result["response"].startswith("Hello,")


def test_a_first_draft_misses_checklist_items_that_a_second_draft_adds() -> None:
    first = support.draft_reply("Double charge", "I was charged twice", priority="high")
    review = support.grade_reply(**first)
    assert 0 < review["score"] < 1
    assert set(review["missing"]) == {"apology", "timeline", "next_steps", "sign_off"}
    assert len(review["feedback"]) == len(review["missing"])

    second = support.draft_reply("Double charge", "I was charged twice", priority="high", missing=review["missing"])
    assert support.grade_reply(**second) == {"score": 1.0, "missing": [], "feedback": []}
    assert "within" in second["response"] and "hours" in second["response"]


def test_grading_reads_the_text_not_the_claimed_coverage() -> None:
    review = support.grade_reply("ok", covers=["greeting", "apology", "timeline", "next_steps", "sign_off"])
    assert review["score"] == 0.0
    assert len(review["missing"]) == 6


def test_handlers_reject_an_unknown_priority() -> None:
    with pytest.raises(ValueError, match="unknown priority 'p1'"):
        support.general("Hi", "there", priority="p1")


# --- the registry file ------------------------------------------------------------------------------------------

EXPECTED_TOOLS = {
    "extract-invoice": "server.demo.invoice:extract",
    "match-po": "server.demo.invoice:match_po",
    "check-budget": "server.demo.invoice:check_budget",
    "score-risk": "server.demo.invoice:score_risk",
    "post-to-erp": "server.demo.invoice:post_to_erp",
    "vendor-financials": "server.demo.vendor_risk:financials",
    "vendor-sanctions": "server.demo.vendor_risk:sanctions",
    "vendor-news": "server.demo.vendor_risk:news",
    "vendor-performance": "server.demo.vendor_risk:performance",
    "vendor-contract": "server.demo.vendor_risk:contract_terms",
    "synthesize-risk": "server.demo.vendor_risk:synthesize",
    "classify-ticket": "server.demo.support:classify",
    "handle-billing": "server.demo.support:billing",
    "handle-outage": "server.demo.support:outage",
    "handle-security": "server.demo.support:security",
    "handle-general": "server.demo.support:general",
    "draft-reply": "server.demo.support:draft_reply",
    "grade-reply": "server.demo.support:grade_reply",
    "draft-renewal": "server.demo.contracts:draft_renewal",
    "generate-amendment": "server.demo.contracts:generate_amendment",
    "send-for-signature": "server.demo.contracts:send_for_signature",
    "it-create-accounts": "server.demo.onboarding:create_accounts",
    "it-provision-laptop": "server.demo.onboarding:provision_laptop",
    "finance-setup-payroll": "server.demo.onboarding:setup_payroll",
    "finance-issue-card": "server.demo.onboarding:issue_card",
    "schedule-kickoff": "server.demo.onboarding:schedule_kickoff",
    "onboarding-checklist": "server.demo.onboarding:checklist",
}
NOT_IDEMPOTENT = {"post-to-erp", "send-for-signature"}


def python_target(spec: ToolSpec) -> str:
    assert isinstance(spec.provider, PythonProvider), spec.ref
    return spec.provider.target


def sample_inputs() -> dict[str, list[dict[str, Any]]]:
    """Realistic inputs per tool, built the way the step trees pass data along."""
    clean, risky = acme(), globex()
    steps: dict[str, list[dict[str, Any]]] = {
        "extract-invoice": [{"text": ACME_TEXT}, {"text": GLOBEX_TEXT}],
        "match-po": [{"invoice": clean}, {"invoice": risky}],
        "check-budget": [
            {"invoice": clean, "department": "operations"},
            {"invoice": risky, "department": None},
            {"invoice": {"vendor": "Nakatomi", "total": 3.0, "currency": "JPY", "invoice_number": None}},
        ],
    }
    steps["score-risk"] = [
        {"invoice": inv, "po_check": invoice.match_po(inv), "budget_check": invoice.check_budget(inv)}
        for inv in (clean, risky)
    ] + [{"invoice": clean}]
    steps["post-to-erp"] = [
        {"invoice": inv, "risk": invoice.score_risk(inv, invoice.match_po(inv), invoice.check_budget(inv))}
        for inv in (clean, risky)
    ] + [{"invoice": risky, "risk": None, "approved_by": "dana"}]
    vendors = ["ACME Corp", "Globex Ltd", "Initech GmbH", "Umbrella Supplies", "Soylent Foods", "Tyrell Trading FZE"]
    for name in ("vendor-financials", "vendor-sanctions", "vendor-performance", "vendor-contract"):
        steps[name] = [{"vendor": v} for v in vendors]
    steps["vendor-news"] = [{"vendor": v, "delay_s": 0} for v in vendors]
    steps["synthesize-risk"] = [{"results": all_sources(v, None), "vendor": v} for v in vendors] + [
        {"results": [vendor_risk.financials("ACME Corp"), None, None, None, None]}
    ]
    tickets = [
        BILLING_TICKET,
        {"subject": "Site down", "body": "Everything returns 503 for everyone"},
        {"subject": "Account hacked", "body": "Unauthorized logins, please help ASAP"},
        {"subject": "Hello", "body": "Do you have a mobile app?"},
    ]
    steps["classify-ticket"] = tickets
    classified = [support.classify(**t) for t in tickets]
    for category in ("billing", "outage", "security", "general"):
        steps[f"handle-{category}"] = [c for c in classified if c["category"] == category] + [
            {"subject": "Minimal", "body": "Only the required fields"}
        ]
    steps["draft-reply"] = [{"subject": t["subject"], "body": t["body"]} for t in tickets] + [
        {"subject": "Refund", "body": "Charged twice", "priority": "high", "missing": ["apology", "timeline"]}
    ]
    steps["grade-reply"] = [support.draft_reply(**d) for d in steps["draft-reply"]]
    drafts = [contracts.draft_renewal(contract_id) for contract_id in sorted(contracts.CONTRACTS)]
    steps["draft-renewal"] = [{"contract_id": contract_id} for contract_id in sorted(contracts.CONTRACTS)]
    steps["generate-amendment"] = drafts
    amendments = [contracts.generate_amendment(**d) for d in drafts]
    steps["send-for-signature"] = [{"amendment_id": a["amendment_id"], "vendor": a["vendor"]} for a in amendments]
    hires = [
        NEW_HIRE,
        {
            **NEW_HIRE,
            "name": "Sam Okafor",
            "role": "sales",
            "level": "L2",
            "salary": 60_000,
            "start_date": "2027-02-27",
            "location": "London",
        },
    ]
    steps["it-create-accounts"] = [{"employee": e} for e in hires]
    accounts = [onboarding.create_accounts(e) for e in hires]
    steps["it-provision-laptop"] = [{"employee": e, "accounts": a} for e, a in zip(hires, accounts, strict=True)]
    it = [onboarding.provision_laptop(e, a) for e, a in zip(hires, accounts, strict=True)]
    steps["finance-setup-payroll"] = [{"employee": e} for e in hires]
    payroll = [onboarding.setup_payroll(e) for e in hires]
    steps["finance-issue-card"] = [{"employee": e, "payroll": p} for e, p in zip(hires, payroll, strict=True)]
    finance = [onboarding.issue_card(e, p) for e, p in zip(hires, payroll, strict=True)]
    steps["schedule-kickoff"] = [{"employee": e, "it": i} for e, i in zip(hires, it, strict=True)]
    kickoff = [onboarding.schedule_kickoff(e, i) for e, i in zip(hires, it, strict=True)]
    steps["onboarding-checklist"] = [
        {"employee": e, "it": i, "finance": f, "kickoff": k}
        for e, i, f, k in zip(hires, it, finance, kickoff, strict=True)
    ]
    return steps


def test_the_registry_file_declares_every_example_tool() -> None:
    loaded = load_registry_file(TOOLS_FILE)

    assert {spec.name: python_target(spec) for spec in loaded.tools} == EXPECTED_TOOLS
    assert [w.name for w in loaded.workflows] == [
        "invoice-intake",
        "invoice-processing",
        "vendor-risk",
        "support-triage",
        "contract-amendment",
        "onboarding-it",
        "onboarding-finance",
        "onboarding-kickoff",
        "employee-onboarding",
    ]
    assert {s.arguments["workflow"].split("@")[0] for s in SCENARIOS} < {w.name for w in loaded.workflows}
    for spec in loaded.tools:
        assert spec.version == "1.0.0"
        assert spec.idempotent is (spec.name not in NOT_IDEMPOTENT)
        assert spec.description and spec.input_schema and spec.output_schema
        assert spec.input_schema["required"] and spec.output_schema["required"]
        assert 0 < spec.cost < 0.1
        assert spec.timeout_s is not None
        assert spec.tags
        assert callable(load_target(python_target(spec)))


@pytest.mark.anyio
async def test_every_tool_output_satisfies_its_own_output_schema() -> None:
    loaded = load_registry_file(TOOLS_FILE)
    samples = sample_inputs()
    assert set(samples) == {spec.name for spec in loaded.tools}

    for spec in loaded.tools:
        assert spec.input_schema is not None and spec.output_schema is not None
        inputs, outputs = Draft202012Validator(spec.input_schema), Draft202012Validator(spec.output_schema)
        fn = load_target(python_target(spec))
        for sample in samples[spec.name]:
            assert not list(inputs.iter_errors(sample)), f"{spec.name}: sample input {sample} breaks its input_schema"
            result = fn(**sample)
            if inspect.isawaitable(result):
                result = await result
            json.dumps(result)  # JSON data only
            errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in outputs.iter_errors(result)]
            assert not errors, f"{spec.name}({sample}) -> {result} breaks its output_schema: {errors}"


def test_input_schemas_reject_what_the_functions_would_not_accept() -> None:
    specs = {spec.name: spec for spec in load_registry_file(TOOLS_FILE).tools}

    def valid(name: str, value: Any) -> bool:
        schema = specs[name].input_schema
        assert schema is not None
        return Draft202012Validator(schema).is_valid(value)

    assert not valid("extract-invoice", {"text": "x", "language": "en"})
    assert not valid("vendor-news", {"vendor": "ACME", "delay_s": -1})
    assert not valid("check-budget", {"invoice": {"total": 1}, "department": "marketing"})
    assert not valid("handle-billing", {"subject": "s", "body": "b", "priority": "p1"})


# --- the demo's step trees, run by the engine ---------------------------------------------------------------


def demo_run(index: int) -> tuple[dict[str, Any], Any]:
    """The step tree and input of ``podium demo``'s scenario ``index``: the workflow it runs, from the bundled
    registry file."""
    scenario = SCENARIOS[index]
    assert scenario.tool == "run_workflow"
    name = scenario.arguments["workflow"].split("@")[0]
    [workflow] = [w for w in load_registry_file(TOOLS_FILE).workflows if w.name == name]
    return workflow.step, scenario.arguments["input"]


def test_the_demo_runs_the_seed_scenarios_on_their_sample_inputs() -> None:
    assert demo_run(0)[1] == {"text": ACME_TEXT}
    assert demo_run(1)[1] == {"vendor": "Globex Ltd"}
    assert demo_run(2)[1] == BILLING_TICKET
    assert demo_run(1)[0]["fan_out"]["strategy"] == "best_effort"
    assert demo_run(1)[0]["fan_out"]["branch_timeout_s"] == 0.5


@pytest.fixture
async def examples(registry: Registry) -> Registry:
    await registry.register_file(TOOLS_FILE)
    return registry


@pytest.mark.anyio
async def test_the_invoice_chain_runs_end_to_end(engine: Engine, examples: Registry) -> None:
    tree, run_input = demo_run(0)

    run = await engine.run(tree, run_input)

    assert run.status == "succeeded", run.error
    assert run.output["status"] == "posted"
    assert run.output["payment_date"] == "2026-04-01"
    assert run.output["posting_id"] == invoice.post_to_erp(acme(), {"decision": "auto_approve"})["posting_id"]


@pytest.mark.anyio
async def test_the_vendor_fan_out_times_out_news_and_synthesizes_the_rest(engine: Engine, examples: Registry) -> None:
    tree, run_input = demo_run(1)

    run = await engine.run(tree, run_input)

    assert run.status == "partial", run.error
    assert run.missing == ["fan_out/2"]
    assert run.output["missing"] == [{"source": "news", "note": "data unavailable — manual review recommended"}]
    assert run.output["recommendation"] == "manual_review"
    assert [d["concerning"] for d in run.output["disagreements"]] == ["performance"]


@pytest.mark.anyio
async def test_the_support_route_sends_the_ticket_to_its_handler(engine: Engine, examples: Registry) -> None:
    tree, run_input = demo_run(2)

    run = await engine.run(tree, run_input)

    assert run.status == "succeeded", run.error
    assert run.output["queue"] == "billing-ops"
    assert run.output["priority"] == "high"
    steps = {record.path for record in await engine.steps(run.id)}
    assert "1/route/case=billing" in steps


def test_a_renewal_brief_flags_an_increase_above_the_market_and_a_low_liability_cap() -> None:
    draft = contracts.draft_renewal("C-1001")
    assert draft["recommended"] == {"increase_pct": 4.0, "term_months": 24, "liability_cap_months": 12}
    assert draft["new_annual_value"] == 124_800.0
    assert any("above the market range" in f for f in draft["risk_flags"])
    assert any("liability cap of 3 months" in f for f in draft["risk_flags"])
    assert contracts.draft_renewal("C-2002")["risk_flags"] == []


def test_an_amendment_follows_the_terms_as_approved_and_an_unknown_contract_is_refused() -> None:
    draft = contracts.draft_renewal("C-1001")
    edited = {**draft, "recommended": {**draft["recommended"], "increase_pct": 3.5}}
    amendment = contracts.generate_amendment(**edited)
    assert amendment["annual_value"] == 124_200.0 and "(+3.5%)" in amendment["text"]
    assert amendment["amendment_id"] != contracts.generate_amendment(**draft)["amendment_id"]
    sent = contracts.send_for_signature(amendment["amendment_id"], "ACME Corp")
    assert sent["status"] == "sent" and sent["sent_to"] == "contracts@acme.example"
    with pytest.raises(ValueError, match="unknown contract 'C-9'"):
        contracts.draft_renewal("C-9")


# --- onboarding: the coordinator's specialists ------------------------------------------------------------------


def test_onboarding_tools_derive_accounts_dates_and_limits_from_the_hire() -> None:
    accounts = onboarding.create_accounts(NEW_HIRE)
    it = onboarding.provision_laptop(NEW_HIRE, accounts)
    payroll = onboarding.setup_payroll(NEW_HIRE)
    kickoff = onboarding.schedule_kickoff(NEW_HIRE, it)
    assert accounts["email"] == "druiz@acme.example" and accounts["manager_email"] == "lpark@acme.example"
    assert {"github", "dept-platform"} <= set(accounts["groups"])
    assert it["laptop"]["ship_by"] == "2027-01-06"  # three business days before Monday 11 January
    assert payroll["first_pay_date"] == "2027-01-29" and payroll["monthly_gross"] == 6500.0
    assert kickoff["starts_at"] == "2027-01-11T10:00" and kickoff["attendees"][0] == "druiz@acme.example"
    late = {**NEW_HIRE, "start_date": "2027-02-27"}  # a Saturday after the 20th
    assert onboarding.setup_payroll(late)["first_pay_date"] == "2027-03-31"
    assert onboarding.schedule_kickoff(late, it)["starts_at"] == "2027-03-01T10:00"  # the next Monday


def test_onboarding_tools_refuse_what_a_person_must_sort_out() -> None:
    with pytest.raises(ValueError, match="salary 150000 is outside the L3 band .* HR must approve it first"):
        onboarding.setup_payroll({**NEW_HIRE, "salary": 150_000})
    with pytest.raises(ValueError, match="the kickoff needs the new hire's e-mail account"):
        onboarding.schedule_kickoff(NEW_HIRE, {"accounts": {}, "laptop": {}})
    with pytest.raises(ValueError, match="start_date '11/01/2027' is not an ISO date"):
        onboarding.provision_laptop({**NEW_HIRE, "start_date": "11/01/2027"}, onboarding.create_accounts(NEW_HIRE))


@pytest.mark.anyio
async def test_the_onboarding_coordinator_delegates_and_a_refused_salary_fails_its_finance_child(
    engine: Engine, examples: Registry
) -> None:
    started = await engine.start_workflow("employee-onboarding@^1", NEW_HIRE)
    run = await engine.wait(started.id, timeout_s=20)
    specialists = {child_info(c).workflow: c for c in await engine.store.child_runs(run.id)}
    assert run.status == "succeeded", run.error
    assert run.output["ready"] is True and run.output["summary"].startswith("Dana Ruiz is ready for 2027-01-11")
    assert sorted(str(name) for name in specialists) == [
        "onboarding-finance@1.0.0",
        "onboarding-it@1.0.0",
        "onboarding-kickoff@1.0.0",
    ]
    assert all(c.status == "succeeded" for c in specialists.values())
    assert run.usage_steps == 6  # the checklist and the specialists' five steps
    assert specialists["onboarding-it@1.0.0"].limits["max_steps"] == 4  # the step's budget, within the workflow's

    started = await engine.start_workflow("employee-onboarding@^1", {**NEW_HIRE, "salary": 150_000})
    refused = await engine.wait(started.id, timeout_s=20)
    assert refused.status == "failed" and refused.error is not None
    assert "outside the L3 band" in refused.error["message"] and "onboarding-finance" in refused.error["message"]
