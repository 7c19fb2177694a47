"""Vendor risk assessment, the seed's parallel fan-out and fan-in.

Five independent sources run in parallel (financials, sanctions, news, performance, contract terms), each returning
a ``score`` in [0, 1] where 0 is no risk and 1 is maximum risk, plus the evidence behind it. ``synthesize`` is the
fan-in: a weighted score over the sources that answered, the ones that did not named as "data unavailable — manual
review recommended", and an explanation wherever sources disagree. The vendor data is built in and fictional.

``news`` is the slow source: it waits ``delay_s`` (3 s by default) before answering, so a fan-out with a shorter
branch timeout shows how a hung branch becomes an explicit gap instead of blocking the assessment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import anyio

from server.demo.invoice import vendor_key

__all__ = ["SOURCES", "contract_terms", "financials", "news", "performance", "sanctions", "synthesize"]

#: The sources in fan-out order, with their weight in the overall score.
WEIGHTS: Final[dict[str, float]] = {
    "financials": 0.25,
    "sanctions": 0.25,
    "news": 0.15,
    "performance": 0.20,
    "contract": 0.15,
}
SOURCES: Final[tuple[str, ...]] = tuple(WEIGHTS)
MISSING_NOTE: Final = "data unavailable — manual review recommended"

#: Built-in vendor records, keyed by ``vendor_key``. ``None`` means the source holds nothing on the vendor.
VENDORS: Final[dict[str, dict[str, Any]]] = {
    "acme": {
        "name": "ACME Corp",
        "country": "US",
        "financials": {"credit_score": 82, "revenue_musd": 420.0, "debt_to_equity": 0.6, "days_beyond_terms": 4},
        "regulatory": [],
        "news": [
            ("2026-02-11", "ACME Corp opens a second distribution centre in Rotterdam", 0.6),
            ("2026-01-20", "ACME recalls a small batch of widget brackets; no injuries reported", -0.3),
        ],
        "performance": {"on_time_rate": 0.96, "defect_rate": 0.008, "open_disputes": 0, "orders_12m": 120},
        "contract": {
            "payment_terms_days": 30,
            "liability_cap_multiple": 1.5,
            "termination_notice_days": 60,
            "data_protection_addendum": True,
            "auto_renewal": False,
            "audit_rights": True,
        },
    },
    "globex": {
        "name": "Globex Ltd",
        "country": "GB",
        "financials": {"credit_score": 88, "revenue_musd": 2100.0, "debt_to_equity": 0.9, "days_beyond_terms": 2},
        "regulatory": [],
        "news": [
            ("2026-03-18", "Globex under regulator investigation over a customer data breach", -0.8),
            ("2026-03-02", "Former executives sue Globex over accounting practices", -0.7),
            ("2026-01-15", "Globex posts record annual revenue", 0.5),
        ],
        "performance": {"on_time_rate": 0.71, "defect_rate": 0.03, "open_disputes": 2, "orders_12m": 310},
        "contract": {
            "payment_terms_days": 45,
            "liability_cap_multiple": 1.0,
            "termination_notice_days": 90,
            "data_protection_addendum": True,
            "auto_renewal": True,
            "audit_rights": True,
        },
    },
    "initech": {
        "name": "Initech GmbH",
        "country": "DE",
        "financials": {"credit_score": 41, "revenue_musd": 38.0, "debt_to_equity": 2.8, "days_beyond_terms": 27},
        "regulatory": ["2025-11: GDPR fine of EUR 40,000 from the Hamburg data protection authority (paid, closed)"],
        "news": [("2026-02-27", "Initech announces restructuring affecting 15% of staff", -0.4)],
        "performance": {"on_time_rate": 0.90, "defect_rate": 0.02, "open_disputes": 1, "orders_12m": 24},
        "contract": {
            "payment_terms_days": 14,
            "liability_cap_multiple": 0.5,
            "termination_notice_days": 180,
            "data_protection_addendum": False,
            "auto_renewal": True,
            "audit_rights": False,
        },
    },
    "umbrella supplies": {
        "name": "Umbrella Supplies",
        "country": "US",
        "financials": {"credit_score": 67, "revenue_musd": 95.0, "debt_to_equity": 1.2, "days_beyond_terms": 9},
        "regulatory": [],
        "news": [],
        "performance": None,
        "contract": None,
    },
    "soylent foods": {
        "name": "Soylent Foods Inc",
        "country": "US",
        "financials": {"credit_score": 74, "revenue_musd": 640.0, "debt_to_equity": 1.1, "days_beyond_terms": 6},
        "regulatory": [],
        "news": [
            ("2026-03-09", "Soylent Foods wins a sustainability award for its packaging", 0.7),
            ("2025-12-04", "Soylent Foods expands its plant-based range", 0.4),
        ],
        "performance": {"on_time_rate": 0.98, "defect_rate": 0.005, "open_disputes": 0, "orders_12m": 85},
        "contract": {
            "payment_terms_days": 30,
            "liability_cap_multiple": 2.0,
            "termination_notice_days": 30,
            "data_protection_addendum": True,
            "auto_renewal": False,
            "audit_rights": True,
        },
    },
}

#: A fictional screening list: entity, list name and programme.
SANCTIONS_LIST: Final[tuple[dict[str, str], ...]] = (
    {"entity": "Tyrell Trading FZE", "list": "OFAC SDN (demo)", "program": "export controls"},
    {"entity": "Umbrella Holdings International", "list": "EU consolidated list (demo)", "program": "dual-use goods"},
    {"entity": "Cyberdyne Exports LLC", "list": "UK OFSI (demo)", "program": "arms embargo"},
)
_GENERIC_WORDS = frozenset(
    {"trading", "supplies", "supply", "holdings", "international", "group", "global", "services", "foods", "exports"}
    | {"imports", "systems", "industries", "the", "and", "of"}
)

#: Contract standards: term, check, the standard in words, severity (points added when missed).
_CONTRACT_STANDARDS: Final[tuple[tuple[str, Callable[[Any], bool], str, float], ...]] = (
    ("payment_terms_days", lambda v: v >= 30, "at least 30 days", 0.1),
    ("liability_cap_multiple", lambda v: v >= 1.0, "at least 1x annual spend", 0.3),
    ("termination_notice_days", lambda v: v <= 90, "at most 90 days", 0.1),
    ("data_protection_addendum", lambda v: v is True, "signed", 0.3),
    ("auto_renewal", lambda v: v is False, "no auto-renewal", 0.1),
    ("audit_rights", lambda v: v is True, "granted", 0.1),
)

_GOOD: Final = {
    "financials": "financials look strong",
    "sanctions": "sanctions screening is clear",
    "news": "news coverage is favourable",
    "performance": "delivery performance is solid",
    "contract": "contract terms meet our standards",
}
_BAD: Final = {
    "financials": "financials are weak",
    "sanctions": "sanctions screening raised a flag",
    "news": "news sentiment is negative",
    "performance": "delivery performance is poor",
    "contract": "contract terms deviate from our standards",
}
_WHY: Final = {
    "financials": "Credit data predicts disruption risk that a good track record does not rule out.",
    "sanctions": "A sanctions flag overrides favourable signals until compliance clears it.",
    "news": "News reflects recent events that filed financials do not show yet, so it is weighted lower but needs "
    "follow-up.",
    "performance": "Our own delivery records are first-hand evidence, so they count more than external signals for "
    "operational risk.",
    "contract": "Contract gaps are fixable in negotiation and say little about the vendor's health.",
}
REASSURING: Final = 0.3
CONCERNING: Final = 0.6


def _clamp(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 2)


def _record(vendor: str) -> tuple[str, dict[str, Any] | None]:
    """The vendor's display name and record (``None`` when the vendor is not in the dataset)."""
    record = VENDORS.get(vendor_key(vendor))
    return (record["name"] if record else vendor.strip()), record


def financials(vendor: str) -> dict[str, Any]:
    """Credit scoring from (built-in) D&B-style financial data.

    Args:
        vendor: The vendor's name, any common spelling (``"Globex"``, ``"Globex Ltd."``).

    Returns:
        ``source`` (``financials``), ``vendor``, ``score`` (risk, 0 to 1), ``credit_score`` (0 to 100 or ``null``),
        ``metrics`` and ``evidence``.
    """
    name, record = _record(vendor)
    data = record["financials"] if record else None
    if data is None:
        return {
            "source": "financials",
            "vendor": name,
            "score": 0.6,
            "credit_score": None,
            "metrics": {},
            "evidence": [f"no credit file found for {name}: financial standing unverified"],
        }
    score = 1 - data["credit_score"] / 100
    evidence = [f"credit score {data['credit_score']}/100, revenue USD {data['revenue_musd']:,.0f}m"]
    if data["debt_to_equity"] > 2:
        score += 0.1
        evidence.append(f"high leverage: debt/equity {data['debt_to_equity']}")
    if data["days_beyond_terms"] > 15:
        score += 0.1
        evidence.append(f"pays its own suppliers {data['days_beyond_terms']} days late on average")
    else:
        evidence.append(f"pays its suppliers within {data['days_beyond_terms']} days of terms")
    return {
        "source": "financials",
        "vendor": name,
        "score": _clamp(score),
        "credit_score": data["credit_score"],
        "metrics": dict(data),
        "evidence": evidence,
    }


def sanctions(vendor: str) -> dict[str, Any]:
    """Screen the vendor's name against sanctions lists and check regulatory findings.

    An identical name is a ``match`` (score 1), a shared distinctive word a ``possible_match`` (0.6), else
    ``clear`` (0); each regulatory finding adds 0.15.

    Args:
        vendor: The vendor's name; any name can be screened, known vendor or not.

    Returns:
        ``source`` (``sanctions``), ``vendor``, ``score``, ``status`` (``clear``, ``possible_match`` or ``match``),
        ``matches`` (``entity``, ``list``, ``program``, ``match``), ``regulatory`` and ``evidence``.
    """
    name, record = _record(vendor)
    key = vendor_key(name)
    words = set(key.split()) - _GENERIC_WORDS
    matches: list[dict[str, str]] = []
    for entry in SANCTIONS_LIST:
        listed = vendor_key(entry["entity"])
        if listed == key:
            matches.append({**entry, "match": "exact"})
        elif words & (set(listed.split()) - _GENERIC_WORDS):
            matches.append({**entry, "match": "partial"})
    exact = any(m["match"] == "exact" for m in matches)
    status = "match" if exact else "possible_match" if matches else "clear"
    regulatory = list(record["regulatory"]) if record else []
    score = (1.0 if exact else 0.6 if matches else 0.0) + 0.15 * len(regulatory)
    evidence = [f"{m['match']} name match with {m['entity']} on {m['list']} ({m['program']})" for m in matches] or [
        f"no match for {name!r} on {len(SANCTIONS_LIST)} screening lists"
    ]
    evidence.extend(f"regulatory finding: {finding}" for finding in regulatory)
    return {
        "source": "sanctions",
        "vendor": name,
        "score": _clamp(score),
        "status": status,
        "matches": matches,
        "regulatory": regulatory,
        "evidence": evidence,
    }


async def news(vendor: str, delay_s: float = 3.0) -> dict[str, Any]:
    """News and sentiment for reputation signals. The slow source: it answers after ``delay_s`` seconds.

    The score blends the average sentiment with the worst headline: ``0.5 * (1 - mean) / 2 + 0.5 * max(0, -worst)``.

    Args:
        vendor: The vendor's name.
        delay_s: Seconds to wait before answering, standing in for a slow scraper (0 answers at once).

    Returns:
        ``source`` (``news``), ``vendor``, ``score``, ``sentiment`` (mean, -1 to 1, ``null`` without coverage),
        ``articles`` (``date``, ``headline``, ``sentiment``) and ``evidence``.
    """
    await anyio.sleep(max(0.0, delay_s))
    name, record = _record(vendor)
    articles = [
        {"date": date, "headline": headline, "sentiment": sentiment}
        for date, headline, sentiment in (record["news"] if record else [])
    ]
    if not articles:
        return {
            "source": "news",
            "vendor": name,
            "score": 0.3,
            "sentiment": None,
            "articles": [],
            "evidence": [f"no news coverage found for {name}"],
        }
    sentiments = [float(a["sentiment"]) for a in articles]
    mean = sum(sentiments) / len(sentiments)
    worst = min(sentiments)
    score = 0.5 * (1 - mean) / 2 + 0.5 * max(0.0, -worst)
    evidence = [f"{len(articles)} articles, mean sentiment {mean:+.2f}"]
    evidence.extend(f"{a['date']}: {a['headline']} ({a['sentiment']:+.1f})" for a in articles if a["sentiment"] <= -0.5)
    return {
        "source": "news",
        "vendor": name,
        "score": _clamp(score),
        "sentiment": round(mean, 2),
        "articles": articles,
        "evidence": evidence,
    }


def performance(vendor: str) -> dict[str, Any]:
    """The vendor's historical performance in our own systems: on-time delivery, defects, disputes.

    Args:
        vendor: The vendor's name.

    Returns:
        ``source`` (``performance``), ``vendor``, ``score``, ``metrics`` (empty without history) and ``evidence``.
    """
    name, record = _record(vendor)
    data = record["performance"] if record else None
    if data is None:
        return {
            "source": "performance",
            "vendor": name,
            "score": 0.5,
            "metrics": {},
            "evidence": [f"no order history with {name}: performance unknown"],
        }
    score = (1 - data["on_time_rate"]) * 1.5 + data["defect_rate"] * 5 + 0.1 * data["open_disputes"]
    evidence = [
        f"{data['on_time_rate']:.0%} of {data['orders_12m']} orders in the last 12 months delivered on time",
        f"defect rate {data['defect_rate']:.1%}",
    ]
    if data["open_disputes"]:
        evidence.append(f"{data['open_disputes']} open dispute{'s' if data['open_disputes'] > 1 else ''}")
    return {
        "source": "performance",
        "vendor": name,
        "score": _clamp(score),
        "metrics": dict(data),
        "evidence": evidence,
    }


def contract_terms(vendor: str) -> dict[str, Any]:
    """Review the vendor's contract terms against our standard requirements.

    Args:
        vendor: The vendor's name.

    Returns:
        ``source`` (``contract``), ``vendor``, ``score``, ``deviations`` (``term``, ``actual``, ``standard``,
        ``severity``) and ``evidence``.
    """
    name, record = _record(vendor)
    terms = record["contract"] if record else None
    if terms is None:
        return {
            "source": "contract",
            "vendor": name,
            "score": 0.7,
            "deviations": [],
            "evidence": [f"no signed contract with {name} on file: standard terms are not in place"],
        }
    deviations: list[dict[str, Any]] = []
    score = 0.0
    for term, check, standard, points in _CONTRACT_STANDARDS:
        actual = terms[term]
        if not check(actual):
            score += points
            severity = "major" if points >= 0.3 else "minor"
            deviations.append({"term": term, "actual": actual, "standard": standard, "severity": severity})
    evidence = [f"{d['term']}: {d['actual']} (standard: {d['standard']}, {d['severity']})" for d in deviations] or [
        f"all {len(_CONTRACT_STANDARDS)} standard terms met"
    ]
    return {
        "source": "contract",
        "vendor": name,
        "score": _clamp(score),
        "deviations": deviations,
        "evidence": evidence,
    }


def _by_source(results: list[dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """The answered sources by name: from each result's ``source``, else its position when all five are listed."""
    found: dict[str, dict[str, Any]] = {}
    for index, result in enumerate(results):
        if not isinstance(result, dict):
            continue
        source = result.get("source")
        if source not in WEIGHTS and len(results) == len(SOURCES):
            source = SOURCES[index]
        score = result.get("score")
        if isinstance(source, str) and source in WEIGHTS and isinstance(score, int | float):
            found[source] = result
    return found


def synthesize(results: list[dict[str, Any] | None], vendor: str | None = None) -> dict[str, Any]:
    """Fan-in: one risk score and narrative from the source results, naming missing sources and disagreements.

    The score is the weighted mean over the sources that answered (weights: financials 0.25, sanctions 0.25,
    news 0.15, performance 0.20, contract 0.15), rated ``low`` below 0.3, ``medium`` below 0.6, else ``high``. A
    confirmed sanctions match makes it ``high`` and the recommendation ``reject`` regardless. A missing source
    (``null`` in ``results``, e.g. a branch that timed out) is listed as "data unavailable — manual review
    recommended". Missing sources, a possible sanctions match, a ``high`` rating or a red flag (a source at 0.75 or
    more) each call for manual review. A source at 0.6 or more while others are at 0.3 or less is a disagreement,
    explained in words.

    Args:
        results: The source outputs in fan-out order, ``null`` for a branch that produced nothing.
        vendor: The vendor's name; default: the name the sources report.

    Returns:
        ``vendor``, ``score``, ``rating``, ``recommendation`` (``approve``, ``approve_with_conditions``,
        ``manual_review`` or ``reject``), ``manual_review``, ``sources`` (score per answered source), ``coverage``
        (share of the total weight that answered), ``missing`` (``source``, ``note``), ``disagreements``
        (``concerning``, ``reassuring``, ``explanation``), ``red_flags`` and ``summary``.

    Raises:
        ValueError: No source answered, so there is nothing to synthesize.
    """
    answered = _by_source(results)
    if not answered:
        raise ValueError(f"nothing to synthesize: none of the {len(results)} results is a source report")
    name = vendor or next((str(r["vendor"]) for r in answered.values() if r.get("vendor")), "unknown vendor")
    scores = {source: float(answered[source]["score"]) for source in SOURCES if source in answered}
    weight = sum(WEIGHTS[s] for s in scores)
    score = round(sum(WEIGHTS[s] * v for s, v in scores.items()) / weight, 3)
    missing = [{"source": s, "note": MISSING_NOTE} for s in SOURCES if s not in scores]

    sanction_status = answered["sanctions"].get("status") if "sanctions" in answered else None
    red_flags = [f"{s}: {_BAD[s]} (risk {v:.2f})" for s, v in scores.items() if v >= 0.75]
    if sanction_status == "match":
        score = max(score, 0.9)
    rating = "low" if score < 0.3 else "medium" if score < 0.6 else "high"

    reassuring = [s for s, v in scores.items() if v <= REASSURING]
    disagreements: list[dict[str, Any]] = []
    for source, value in scores.items():
        if value < CONCERNING or not reassuring:
            continue
        good = ", ".join(f"{_GOOD[r]} ({scores[r]:.2f})" for r in reassuring)
        disagreements.append(
            {
                "concerning": source,
                "reassuring": reassuring,
                "explanation": (
                    f"{good[0].upper()}{good[1:]}, but {_BAD[source]} ({value:.2f}). {_WHY[source]} "
                    f"It carries {WEIGHTS[source]:.0%} of the weight against {sum(WEIGHTS[r] for r in reassuring):.0%} "
                    f"for the reassuring sources, so the overall score settles at {score:.2f}; verify the {source} "
                    "findings before relying on the favourable ones."
                ),
            }
        )

    manual_review = bool(missing or red_flags) or sanction_status == "possible_match" or rating == "high"
    if sanction_status == "match":
        recommendation = "reject"
    elif manual_review:
        recommendation = "manual_review"
    else:
        recommendation = "approve" if rating == "low" else "approve_with_conditions"

    top = max(scores, key=lambda s: scores[s])
    parts = [
        f"{name}: overall risk {score:.2f} ({rating}) from {len(scores)} of {len(SOURCES)} sources "
        f"({weight / sum(WEIGHTS.values()):.0%} of the weight).",
        f"Highest risk: {top} at {scores[top]:.2f}.",
    ]
    if sanction_status == "match":
        parts.append("A confirmed sanctions match overrides every other signal: do not onboard.")
    if missing:
        parts.append(f"Missing: {', '.join(m['source'] for m in missing)} — {MISSING_NOTE}.")
    if disagreements:
        parts.append(f"Sources disagree on {', '.join(d['concerning'] for d in disagreements)}; see disagreements.")
    parts.append(f"Recommendation: {recommendation.replace('_', ' ')}.")
    return {
        "vendor": name,
        "score": score,
        "rating": rating,
        "recommendation": recommendation,
        "manual_review": manual_review,
        "sources": scores,
        "coverage": round(weight / sum(WEIGHTS.values()), 2),
        "missing": missing,
        "disagreements": disagreements,
        "red_flags": red_flags,
        "summary": " ".join(parts),
    }
