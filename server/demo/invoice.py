"""Invoice processing, the seed's sequential chain: extract, match the PO, check the budget, score, post.

Each function is one link of the chain and one Podium tool (see ``tools.toml``): it is called with JSON keyword
arguments and returns a JSON object, the structured output contract the next link relies on. The reference data
(purchase orders, department budgets, vendor history, exchange rates) is built in, so every run is deterministic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any, Final

__all__ = ["check_budget", "extract", "match_po", "post_to_erp", "score_risk", "vendor_key"]

# --- reference data ---------------------------------------------------------------------------------------------

#: Fixed demo exchange rates into EUR, the currency budgets and vendor history are kept in.
EUR_RATES: Final[dict[str, float]] = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.04}

#: Purchase orders by id: who they are with, the department that owns them, the amount and what is already invoiced.
PURCHASE_ORDERS: Final[dict[str, dict[str, Any]]] = {
    "PO-1001": {
        "vendor": "ACME Corp",
        "department": "operations",
        "currency": "EUR",
        "amount": 5000.00,
        "invoiced": 1200.00,
        "status": "open",
    },
    "PO-0950": {
        "vendor": "Initech GmbH",
        "department": "facilities",
        "currency": "EUR",
        "amount": 2000.00,
        "invoiced": 2000.00,
        "status": "closed",
    },
    "PO-2001": {
        "vendor": "Globex Ltd",
        "department": "it",
        "currency": "USD",
        "amount": 20000.00,
        "invoiced": 18500.00,
        "status": "open",
    },
    "PO-3001": {
        "vendor": "Initech GmbH",
        "department": "facilities",
        "currency": "EUR",
        "amount": 800.00,
        "invoiced": 0.00,
        "status": "open",
    },
}

#: Budget remaining this quarter per department, in EUR.
DEPARTMENT_BUDGETS: Final[dict[str, float]] = {
    "operations": 40000.00,
    "it": 12000.00,
    "facilities": 1500.00,
    "general": 5000.00,
}

#: What past invoices from each vendor looked like (keyed by ``vendor_key``), in EUR.
VENDOR_HISTORY: Final[dict[str, dict[str, Any]]] = {
    "acme": {"average_eur": 1100.00, "invoices": 14, "payment_terms_days": 30, "department": "operations"},
    "globex": {"average_eur": 6000.00, "invoices": 45, "payment_terms_days": 45, "department": "it"},
    "initech": {"average_eur": 300.00, "invoices": 6, "payment_terms_days": 14, "department": "facilities"},
    "umbrella supplies": {"average_eur": 450.00, "invoices": 3, "payment_terms_days": 30, "department": "general"},
}

#: Invoices already posted, as ``(vendor_key, invoice_number)``: a second posting would pay twice.
POSTED_INVOICES: Final[frozenset[tuple[str, str]]] = frozenset({("acme", "INV-2026-0007"), ("globex", "GX-88120")})

DEFAULT_TERMS_DAYS: Final = 30
LARGE_AMOUNT_EUR: Final = 10000.00
ANOMALY_RATIO: Final = 2.0

_LEGAL_SUFFIXES = frozenset(
    {"corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc", "gmbh", "ag", "sa", "plc", "co", "company"}
)
_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}

# --- patterns ---------------------------------------------------------------------------------------------------

_CUR = r"[A-Z]{3}|[€$£]"
_NUM = r"\d[\d.,']*"
_VENDOR_RE = re.compile(
    r"^[ \t]*(?:from|vendor|supplier|seller|billed[ \t]+from)[ \t]*:[ \t]*(?P<vendor>\S.*?)[ \t]*$", re.I | re.M
)
_INVOICE_NO_RE = re.compile(
    r"(?i:invoice)[ \t]*(?i:no\.?|number|num\.?|id|#)?[ \t]*[:#]?[ \t]*#?[ \t]*"
    r"(?P<number>(?=[A-Za-z0-9/_-]*\d)[A-Za-z0-9][A-Za-z0-9/_-]*)"
)
_TOTAL_RE = re.compile(
    r"^[ \t]*(?i:(?:grand[ \t]+|invoice[ \t]+)?total(?:[ \t]+(?:due|amount|payable))?|amount[ \t]+due|balance[ \t]+due)"
    rf"[ \t]*[:=]?[ \t]*(?P<pre>{_CUR})?[ \t]*(?P<amount>{_NUM})[ \t]*(?P<post>{_CUR})?[ \t]*$",
    re.M,
)
_SUBTOTAL_RE = re.compile(
    rf"^[ \t]*(?i:sub[ -]?total|net[ \t]+amount)[ \t]*:?[ \t]*(?:{_CUR})?[ \t]*(?P<amount>{_NUM})", re.M
)
_TAX_RE = re.compile(
    rf"^[ \t]*(?i:vat|tax|gst|sales[ \t]+tax)\b[^:\n]*:[ \t]*(?:{_CUR})?[ \t]*(?P<amount>{_NUM})", re.M
)
_CURRENCY_LINE_RE = re.compile(r"^[ \t]*(?i:currency)[ \t]*:[ \t]*(?P<currency>[A-Z]{3})\b", re.M)
_ITEM_RE = re.compile(
    r"^[ \t]*(?:[-*•][ \t]*)?(?P<qty>\d+(?:[.,]\d+)?)[ \t]*[xX×][ \t]+(?P<desc>\S.*?)[ \t]+@[ \t]*"
    rf"(?P<pre>{_CUR})?[ \t]*(?P<price>{_NUM})[ \t]*(?P<post>{_CUR})?"
    rf"(?:[ \t]*(?i:each|ea\.?|/[ \t]*unit))?(?:[ \t]*=[ \t]*(?:{_CUR})?[ \t]*{_NUM}[ \t]*(?:{_CUR})?)?[ \t]*$",
    re.M,
)
_PO_RE = re.compile(
    r"\b(?:PO|P\.O\.|purchase[ \t]+order)(?:[ \t]*(?:number|no\.?|#))?[ \t]*[:#-]?[ \t]*(?:PO-?)?(?P<po>\d{3,})\b", re.I
)
_TERMS_RE = re.compile(r"(?i)\bnet[ \t]*(?P<days>\d{1,3})\b|\b(?P<days2>\d{1,3})[ \t]*days\b")
_DATE_LABEL_RE = re.compile(
    r"^[ \t]*(?i:(?:invoice[ \t]+|issue[ \t]+)?date(?:[ \t]+of[ \t]+issue)?)[ \t]*:(?P<rest>.*)$", re.M
)
_DUE_LABEL_RE = re.compile(r"^[ \t]*(?i:due[ \t]+date|payment[ \t]+due|due)[ \t]*:(?P<rest>.*)$", re.M)
_ISO_DATE_RE = re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")
_DOTTED_DATE_RE = re.compile(r"\b(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})\b")
_DAY_MONTH_RE = re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?[ \t]+(?P<month>[A-Za-z]{3,9})\.?,?[ \t]+(?P<y>\d{4})\b")
_MONTH_DAY_RE = re.compile(r"\b(?P<month>[A-Za-z]{3,9})\.?[ \t]+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?[ \t]+(?P<y>\d{4})\b")


# --- helpers ----------------------------------------------------------------------------------------------------


def vendor_key(name: str) -> str:
    """A vendor name reduced to its distinctive words, for matching across spellings.

    Args:
        name: A vendor name as written, e.g. ``"ACME Corp."``.

    Returns:
        Lower-case words without punctuation or legal suffixes, e.g. ``"acme"``.
    """
    words = re.findall(r"[a-z0-9]+", name.casefold())
    kept = [word for word in words if word not in _LEGAL_SUFFIXES]
    return " ".join(kept or words)


def _number(text: str) -> float:
    """Parse an amount written with thousands separators: ``1,250.00``, ``1.250,00``, ``1'250.00``, ``12,5``."""
    value = text.strip().rstrip(".,").replace("'", "").replace(" ", "")
    if "," in value and "." in value:
        if value.rfind(",") > value.rfind("."):
            value = value.replace(".", "").replace(",", ".")
        else:
            value = value.replace(",", "")
    elif "," in value:
        head, _, tail = value.rpartition(",")
        value = f"{head}.{tail}" if value.count(",") == 1 and len(tail) in (1, 2) else value.replace(",", "")
    return float(value)


def _currency(*tokens: str | None) -> str | None:
    for token in tokens:
        if token:
            return _SYMBOLS.get(token, token)
    return None


def _date(text: str) -> str | None:
    """The first date in ``text`` as ISO ``YYYY-MM-DD`` (ISO, ``D.M.YYYY``, ``2 March 2026``, ``March 2, 2026``)."""
    candidates: list[tuple[int, int, int, int]] = []  # (position, year, month, day)
    for pattern in (_ISO_DATE_RE, _DOTTED_DATE_RE):
        candidates.extend((m.start(), int(m["y"]), int(m["m"]), int(m["d"])) for m in pattern.finditer(text))
    for pattern in (_DAY_MONTH_RE, _MONTH_DAY_RE):
        for m in pattern.finditer(text):
            month = _MONTHS.get(m["month"].casefold())
            if month is not None:
                candidates.append((m.start(), int(m["y"]), month, int(m["d"])))
    for _, year, month, day in sorted(candidates):
        try:
            return dt.date(year, month, day).isoformat()
        except ValueError:
            continue
    return None


def _vendor(text: str) -> str | None:
    found = _VENDOR_RE.search(text)
    if found:
        return found["vendor"]
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not re.fullmatch(r"(?i)(?:tax[ \t]+|commercial[ \t]+)?invoice:?", stripped):
            return stripped
    return None


def _to_eur(amount: float, currency: str | None) -> float | None:
    rate = EUR_RATES.get(currency or "")
    return None if rate is None else round(amount * rate, 2)


def _total(invoice: dict[str, Any]) -> float:
    total = invoice.get("total")
    if isinstance(total, bool) or not isinstance(total, int | float):
        raise ValueError(f"the invoice has no numeric 'total' (got {total!r}); run extract-invoice first")
    return float(total)


def _eur(amount: Any) -> str:
    return f"{amount:,.2f} EUR" if isinstance(amount, int | float) else "an unknown amount in EUR"


def _money(amount: float, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or '(no currency)'}"


# --- the chain --------------------------------------------------------------------------------------------------


def extract(text: str) -> dict[str, Any]:
    """Extract structured invoice data from free invoice text.

    Recognises a vendor line (``From: ACME Corp``, else the first line), the invoice number, the invoice and due
    dates (returned as ISO dates), a PO reference, payment terms (``Net 30``), the currency, line items such as
    ``2 x Widget @ 12.50``, the subtotal, tax and total (``Total: 1,250.00 EUR``).

    Args:
        text: The invoice as plain text (e.g. OCR output of the PDF).

    Returns:
        ``vendor``, ``invoice_number``, ``date``, ``due_date``, ``po_number``, ``payment_terms_days``, ``currency``,
        ``line_items`` (``description``, ``quantity``, ``unit_price``, ``amount``), ``subtotal``, ``tax``, ``total``
        and ``warnings`` (what could not be found or does not add up). Fields not found are ``null``.

    Raises:
        ValueError: No total amount can be found; without it the invoice cannot be processed.
    """
    totals = list(_TOTAL_RE.finditer(text))
    if not totals:
        raise ValueError(
            "no invoice total found: expected a line such as 'Total: 1,250.00 EUR' or 'Amount due: $980.00'"
        )
    last = totals[-1]
    total = _number(last["amount"])
    warnings: list[str] = []

    items: list[dict[str, Any]] = []
    item_currency: str | None = None
    for m in _ITEM_RE.finditer(text):
        quantity, price = _number(m["qty"]), _number(m["price"])
        item_currency = item_currency or _currency(m["pre"], m["post"])
        items.append(
            {
                "description": m["desc"].strip(),
                "quantity": quantity,
                "unit_price": price,
                "amount": round(quantity * price, 2),
            }
        )

    currency_line = _CURRENCY_LINE_RE.search(text)
    currency = _currency(last["pre"], last["post"], currency_line["currency"] if currency_line else None, item_currency)
    if currency is None:
        warnings.append("no currency found")

    subtotal_match = _SUBTOTAL_RE.search(text)
    subtotal = _number(subtotal_match["amount"]) if subtotal_match else None
    tax_match = _TAX_RE.search(text)
    tax = _number(tax_match["amount"]) if tax_match else None
    if items:
        items_sum = round(sum(item["amount"] for item in items), 2)
        expected, what = (subtotal, "subtotal") if subtotal is not None else (round(total - (tax or 0.0), 2), "total")
        if abs(items_sum - expected) > 0.01:
            warnings.append(f"line items sum to {items_sum:,.2f} but the {what} is {expected:,.2f}")
    else:
        warnings.append("no line items found")

    vendor = _vendor(text)
    if vendor is None:
        warnings.append("no vendor found")
    number_match = _INVOICE_NO_RE.search(text)
    invoice_number = number_match["number"] if number_match else None
    if invoice_number is None:
        warnings.append("no invoice number found")
    date_label = _DATE_LABEL_RE.search(text)
    date = _date(date_label["rest"]) if date_label else None
    due_label = _DUE_LABEL_RE.search(text)
    due_date = _date(due_label["rest"]) if due_label else None
    if date is None:
        # no labelled invoice date: take the first date that is not the due date
        for line in text.splitlines():
            if not _DUE_LABEL_RE.match(line) and (found := _date(line)):
                date = found
                break
    if date is None:
        warnings.append("no invoice date found")
    po_match = _PO_RE.search(text)
    terms_match = _TERMS_RE.search(text)
    terms = int(terms_match["days"] or terms_match["days2"]) if terms_match else None

    return {
        "vendor": vendor,
        "invoice_number": invoice_number,
        "date": date,
        "due_date": due_date,
        "po_number": f"PO-{po_match['po']}" if po_match else None,
        "payment_terms_days": terms,
        "currency": currency,
        "line_items": items,
        "subtotal": subtotal,
        "tax": tax,
        "total": total,
        "warnings": warnings,
    }


def match_po(invoice: dict[str, Any]) -> dict[str, Any]:
    """Validate an extracted invoice against the purchase orders.

    The PO is the one the invoice cites (``po_number``), else the vendor's open PO with the most remaining. The
    invoice matches when the PO is open, belongs to the vendor, is in the same currency and has enough remaining.

    Args:
        invoice: The output of ``extract``.

    Returns:
        The invoice's ``vendor``, ``invoice_number``, ``total`` and ``currency``, plus ``po`` (id or ``null``),
        ``department`` (the PO's owner), ``po_remaining``, ``matched`` and ``issues`` (one sentence each).

    Raises:
        ValueError: The invoice has no numeric total.
    """
    total = _total(invoice)
    vendor = str(invoice.get("vendor") or "")
    currency = invoice.get("currency")
    issues: list[str] = []

    po_id = invoice.get("po_number")
    po = PURCHASE_ORDERS.get(po_id) if isinstance(po_id, str) else None
    if isinstance(po_id, str) and po is None:
        issues.append(f"the invoice cites {po_id}, which is not a known purchase order")
    if po is None:
        open_pos = sorted(
            (
                (p["amount"] - p["invoiced"], pid)
                for pid, p in PURCHASE_ORDERS.items()
                if p["status"] == "open" and vendor_key(p["vendor"]) == vendor_key(vendor)
            ),
            reverse=True,
        )
        if open_pos:
            po_id = open_pos[0][1]
            po = PURCHASE_ORDERS[po_id]
        elif not issues:
            po_id = None
            issues.append(f"no open purchase order for vendor {vendor or '(unknown)'!r}")

    remaining: float | None = None
    if po is not None:
        remaining = round(po["amount"] - po["invoiced"], 2)
        if vendor_key(po["vendor"]) != vendor_key(vendor):
            issues.append(f"{po_id} is with {po['vendor']}, not {vendor or '(unknown vendor)'}")
        if po["status"] != "open":
            issues.append(f"{po_id} is {po['status']}")
        if currency != po["currency"]:
            issues.append(f"invoice currency {currency or '(none)'} does not match {po_id}'s {po['currency']}")
        elif total > remaining + 0.005:
            issues.append(
                f"invoice total {_money(total, currency)} exceeds the {_money(remaining, currency)} "
                f"remaining on {po_id}"
            )

    return {
        "vendor": invoice.get("vendor"),
        "invoice_number": invoice.get("invoice_number"),
        "total": total,
        "currency": currency,
        "po": po_id if po is not None else None,
        "department": po["department"] if po is not None else None,
        "po_remaining": remaining,
        "matched": po is not None and not issues,
        "issues": issues,
    }


def check_budget(invoice: dict[str, Any], department: str | None = None) -> dict[str, Any]:
    """Check budget availability and flag anomalies against the vendor's history.

    Anomalies: a total above twice the vendor's historical average, a vendor with no history, an invoice number
    already posted (a duplicate), an amount that cannot be converted to EUR.

    Args:
        invoice: The output of ``extract``.
        department: The department paying (e.g. ``match-po``'s ``department``); ``null`` uses the vendor's usual
            department, else ``general``.

    Returns:
        ``department``, ``amount_eur``, ``budget_remaining_eur``, ``budget_after_eur``, ``within_budget``,
        ``vendor_average_eur``, ``ratio_to_average`` and ``anomalies`` (one sentence each).

    Raises:
        ValueError: The invoice has no numeric total, or ``department`` is not a known department.
    """
    total = _total(invoice)
    vendor = str(invoice.get("vendor") or "")
    key = vendor_key(vendor)
    history = VENDOR_HISTORY.get(key)
    dept = department or (history["department"] if history else "general")
    if dept not in DEPARTMENT_BUDGETS:
        raise ValueError(f"unknown department {dept!r}; known: {', '.join(sorted(DEPARTMENT_BUDGETS))}")
    remaining = DEPARTMENT_BUDGETS[dept]
    currency = invoice.get("currency")
    amount_eur = _to_eur(total, currency if isinstance(currency, str) else None)
    anomalies: list[str] = []

    if amount_eur is None:
        anomalies.append(f"cannot convert {currency or 'an unknown currency'} to EUR; budget not verified")
    average = history["average_eur"] if history else None
    ratio: float | None = None
    if history is None:
        anomalies.append(f"first invoice from {vendor or 'this vendor'}: no payment history")
    elif amount_eur is not None:
        ratio = round(amount_eur / average, 2) if average else None
        if ratio is not None and ratio > ANOMALY_RATIO:
            anomalies.append(
                f"amount {amount_eur:,.2f} EUR is {ratio:g}x the vendor's average of {average:,.2f} EUR "
                f"(threshold {ANOMALY_RATIO:g}x)"
            )
    number = invoice.get("invoice_number")
    if isinstance(number, str) and (key, number) in POSTED_INVOICES:
        anomalies.append(f"invoice {number} from {vendor} was already posted: possible duplicate")

    within = amount_eur is not None and amount_eur <= remaining
    return {
        "department": dept,
        "amount_eur": amount_eur,
        "budget_remaining_eur": remaining,
        "budget_after_eur": round(remaining - amount_eur, 2) if amount_eur is not None else None,
        "within_budget": within,
        "vendor_average_eur": average,
        "ratio_to_average": ratio,
        "anomalies": anomalies,
    }


def score_risk(
    invoice: dict[str, Any],
    po_check: dict[str, Any] | None = None,
    budget_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the invoice's risk from the earlier checks and decide auto-approval or human approval.

    Points: extraction warnings (0.1 each, at most 0.2), an unmatched or missing PO check (0.35 / 0.3), over budget
    (0.3) or no budget check (0.2), each anomaly (0.2), a large amount (0.15 above 10,000 EUR). Risk is ``low``
    below 0.25, ``medium`` below 0.6, else ``high``; only ``low`` is auto-approved.

    Args:
        invoice: The output of ``extract``.
        po_check: The output of ``match_po``.
        budget_check: The output of ``check_budget``.

    Returns:
        ``risk``, ``score`` (0 to 1), ``reasons``, ``decision`` (``auto_approve`` or ``needs_approval``) and
        ``approver`` (who should approve, ``null`` when auto-approved).

    Raises:
        ValueError: The invoice has no numeric total.
    """
    total = _total(invoice)
    points = 0.0
    reasons: list[str] = []

    warnings = [str(w) for w in invoice.get("warnings") or []]
    if warnings:
        points += min(0.2, 0.1 * len(warnings))
        reasons.extend(f"extraction: {w}" for w in warnings)
    if po_check is None:
        points += 0.3
        reasons.append("no purchase-order check was run")
    elif not po_check.get("matched"):
        points += 0.35
        reasons.extend(f"purchase order: {issue}" for issue in po_check.get("issues") or ["not matched"])
    if budget_check is None:
        points += 0.2
        reasons.append("no budget check was run")
    else:
        if not budget_check.get("within_budget"):
            points += 0.3
            left, needed = budget_check.get("budget_remaining_eur"), budget_check.get("amount_eur")
            reasons.append(
                f"budget: {budget_check.get('department')} has {_eur(left)} left, the invoice needs {_eur(needed)}"
            )
        anomalies = [str(a) for a in budget_check.get("anomalies") or []]
        points += 0.2 * len(anomalies)
        reasons.extend(f"anomaly: {a}" for a in anomalies)
    currency = invoice.get("currency")
    amount_eur = budget_check.get("amount_eur") if budget_check else None
    if not isinstance(amount_eur, int | float):
        amount_eur = _to_eur(total, currency if isinstance(currency, str) else None)
    if amount_eur is not None and amount_eur > LARGE_AMOUNT_EUR:
        points += 0.15
        reasons.append(f"large amount: {amount_eur:,.2f} EUR (above {LARGE_AMOUNT_EUR:,.0f} EUR)")

    score = round(min(1.0, points), 3)
    risk = "low" if score < 0.25 else "medium" if score < 0.6 else "high"
    if not reasons:
        reasons.append("PO matched, within budget, no anomalies")
    approver = None if risk == "low" else "department manager" if risk == "medium" else "finance controller"
    return {
        "risk": risk,
        "score": score,
        "reasons": reasons,
        "decision": "auto_approve" if risk == "low" else "needs_approval",
        "approver": approver,
    }


def post_to_erp(
    invoice: dict[str, Any], risk: dict[str, Any] | None = None, approved_by: str | None = None
) -> dict[str, Any]:
    """Post the invoice to the ERP and schedule payment. Not idempotent: each call is a posting.

    An auto-approved invoice, or one with ``approved_by``, is ``posted`` and its payment scheduled; otherwise it
    is ``parked`` (recorded, awaiting approval, no payment). The posting id is derived from the vendor and invoice
    number, so the ERP can reject a second posting of the same invoice.

    Args:
        invoice: The output of ``extract``.
        risk: The output of ``score_risk``; without it the invoice needs ``approved_by`` to be posted.
        approved_by: The human who approved the invoice, when ``risk`` asked for approval.

    Returns:
        ``posting_id``, ``status`` (``posted`` or ``parked``), ``vendor``, ``invoice_number``, ``amount``,
        ``currency``, ``payment_terms_days``, ``payment_date`` (ISO; the due date, else invoice date + terms),
        ``payment_scheduled``, ``approved_by`` and a one-sentence ``message``.

    Raises:
        ValueError: The invoice has no numeric total.
    """
    total = _total(invoice)
    vendor = str(invoice.get("vendor") or "")
    number = invoice.get("invoice_number")
    identity = f"{vendor_key(vendor)}|{number}" if number else f"{vendor_key(vendor)}|{invoice.get('date')}|{total}"
    posting_id = "ERP-" + hashlib.sha256(identity.encode()).hexdigest()[:12].upper()

    history = VENDOR_HISTORY.get(vendor_key(vendor))
    terms = invoice.get("payment_terms_days")
    if not isinstance(terms, int):
        terms = history["payment_terms_days"] if history else DEFAULT_TERMS_DAYS
    payment_date: str | None = invoice.get("due_date")
    if payment_date is None and invoice.get("date"):
        payment_date = (dt.date.fromisoformat(str(invoice["date"])) + dt.timedelta(days=terms)).isoformat()

    decision = (risk or {}).get("decision")
    posted = decision == "auto_approve" or bool(approved_by)
    currency = invoice.get("currency")
    if posted:
        when = f"payment scheduled for {payment_date}" if payment_date else "payment date to be set (no invoice date)"
        message = f"Posted {posting_id}: {_money(total, currency)} to {vendor}; {when}."
    else:
        message = (
            f"Parked {posting_id}: {_money(total, currency)} to {vendor} awaits approval"
            f"{' by the ' + str(risk['approver']) if risk and risk.get('approver') else ''}; no payment scheduled."
        )
    return {
        "posting_id": posting_id,
        "status": "posted" if posted else "parked",
        "vendor": vendor,
        "invoice_number": number,
        "amount": total,
        "currency": currency,
        "payment_terms_days": terms,
        "payment_date": payment_date,
        "payment_scheduled": posted,
        "approved_by": approved_by,
        "message": message,
    }
