"""Employee onboarding tools for the seed's hierarchical example: a coordinator delegates to IT, finance and a
kickoff scheduler (which needs IT's accounts first), each a workflow of its own with its own tools."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import re
from typing import Any

COMPANY_DOMAIN = "acme.example"
ROLE_GROUPS: dict[str, list[str]] = {
    "engineer": ["github", "ci", "on-call"],
    "designer": ["figma", "design-system"],
    "sales": ["crm", "deal-desk"],
}
LAPTOPS: dict[str, str] = {
    "engineer": "ThinkPad P14s, 32 GB RAM",
    "designer": "MacBook Pro 14, 36 GB RAM",
}
STANDARD_LAPTOP = "ThinkPad T14, 16 GB RAM"
SHIPPING_BUSINESS_DAYS = 3
# yearly salary bands per level, in the location's currency
SALARY_BANDS: dict[str, tuple[int, int]] = {
    "L1": (42_000, 55_000),
    "L2": (52_000, 70_000),
    "L3": (65_000, 90_000),
    "L4": (85_000, 120_000),
}
CARD_LIMITS: dict[str, int] = {"sales": 5_000, "engineer": 1_500}
STANDARD_CARD_LIMIT = 1_000
CURRENCIES: dict[str, str] = {"Berlin": "EUR", "Paris": "EUR", "London": "GBP", "New York": "USD"}
KICKOFF_HOUR = 10
KICKOFF_MINUTES = 45


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _business_days_before(day: dt.date, count: int) -> dt.date:
    while count:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def _next_business_day(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def _username(name: str) -> str:
    words = [re.sub(r"[^a-z]", "", w) for w in name.lower().split()]
    words = [w for w in words if w]
    if not words:
        raise ValueError(f"name {name!r} has no letters to make a username from")
    return (words[0][0] + words[-1]) if len(words) > 1 else words[0]


def create_accounts(employee: dict[str, Any]) -> dict[str, Any]:
    """The new hire's directory account: username, e-mail and the groups their role and department give."""
    username = _username(employee["name"])
    groups = ["all-staff", f"dept-{employee['department']}", *ROLE_GROUPS.get(employee["role"], [])]
    return {
        "username": username,
        "email": f"{username}@{COMPANY_DOMAIN}",
        "groups": groups,
        "manager_email": f"{_username(employee['manager'])}@{COMPANY_DOMAIN}",
    }


def provision_laptop(employee: dict[str, Any], accounts: dict[str, Any]) -> dict[str, Any]:
    """Order the role's laptop, enrolled to the new account, shipped in time for the first day. Returns what IT
    hands over: the accounts and the laptop."""
    start = _date(employee["start_date"], "start_date")
    ship_by = _business_days_before(start, SHIPPING_BUSINESS_DAYS)
    laptop = {
        "model": LAPTOPS.get(employee["role"], STANDARD_LAPTOP),
        "asset_tag": "LT-" + _digest(accounts["username"], employee["start_date"])[:6].upper(),
        "enrolled_to": accounts["email"],
        "ship_by": ship_by.isoformat(),
        "ship_to": employee.get("location", "office"),
    }
    return {"accounts": accounts, "laptop": laptop}


def setup_payroll(employee: dict[str, Any]) -> dict[str, Any]:
    """Put the hire on payroll: the salary must sit in their level's band; first pay on the last business day of
    the start month (the next month's for a start after the 20th)."""
    level = employee["level"]
    if level not in SALARY_BANDS:
        raise ValueError(f"level {level!r} has no salary band; known: {', '.join(SALARY_BANDS)}")
    low, high = SALARY_BANDS[level]
    salary = employee["salary"]
    if not low <= salary <= high:
        raise ValueError(f"salary {salary} is outside the {level} band ({low} to {high}): HR must approve it first")
    start = _date(employee["start_date"], "start_date")
    year, month = (start.year, start.month)
    if start.day > 20:
        year, month = (year + month // 12, month % 12 + 1)
    pay = dt.date(year, month, calendar.monthrange(year, month)[1])
    while pay.weekday() >= 5:
        pay -= dt.timedelta(days=1)
    return {
        "payroll_id": "PR-" + _digest(employee["name"], employee["start_date"])[:8].upper(),
        "monthly_gross": round(salary / 12, 2),
        "currency": CURRENCIES.get(employee.get("location", ""), "EUR"),
        "first_pay_date": pay.isoformat(),
    }


def issue_card(employee: dict[str, Any], payroll: dict[str, Any]) -> dict[str, Any]:
    """An expense card with the role's monthly limit, in the payroll's currency. Returns what finance hands over:
    the payroll record and the card."""
    card = {
        "card_last4": str(int(_digest("card", payroll["payroll_id"])[:8], 16) % 10_000).zfill(4),
        "monthly_limit": CARD_LIMITS.get(employee["role"], STANDARD_CARD_LIMIT),
        "currency": payroll["currency"],
    }
    return {"payroll": payroll, "card": card}


def schedule_kickoff(employee: dict[str, Any], it: dict[str, Any]) -> dict[str, Any]:
    """Book the first-day kickoff with the manager: it needs the accounts IT created (the invitation goes to the
    new address), so it runs after IT."""
    accounts = it.get("accounts") or {}
    if not accounts.get("email"):
        raise ValueError("the kickoff needs the new hire's e-mail account: IT has not created it")
    day = _next_business_day(_date(employee["start_date"], "start_date"))
    starts = dt.datetime.combine(day, dt.time(KICKOFF_HOUR))
    return {
        "meeting_id": "KO-" + _digest(accounts["email"], day.isoformat())[:6].upper(),
        "starts_at": starts.isoformat(timespec="minutes"),
        "minutes": KICKOFF_MINUTES,
        "attendees": [accounts["email"], accounts["manager_email"]],
        "agenda": ["team introductions", "first-week plan", f"laptop handover ({it['laptop']['asset_tag']})"],
    }


def checklist(
    employee: dict[str, Any], it: dict[str, Any], finance: dict[str, Any], kickoff: dict[str, Any]
) -> dict[str, Any]:
    """Assemble what the specialists did into the onboarding checklist, and say whether the hire is ready."""
    items = [
        {"item": "directory account", "done": bool(it.get("accounts", {}).get("email"))},
        {
            "item": "laptop shipped in time",
            "done": it.get("laptop", {}).get("ship_by", "9999") < employee["start_date"],
        },
        {"item": "payroll", "done": bool(finance.get("payroll", {}).get("payroll_id"))},
        {"item": "expense card", "done": bool(finance.get("card", {}).get("card_last4"))},
        {"item": "kickoff booked", "done": bool(kickoff.get("meeting_id"))},
    ]
    ready = all(item["done"] for item in items)
    open_items = [item["item"] for item in items if not item["done"]]
    return {
        "employee": employee["name"],
        "ready": ready,
        "items": items,
        "summary": (
            f"{employee['name']} is ready for {employee['start_date']}: account {it['accounts']['email']}, "
            f"laptop ships by {it['laptop']['ship_by']}, first pay {finance['payroll']['first_pay_date']}, "
            f"kickoff {kickoff['starts_at']}"
            if ready
            else f"{employee['name']} is not ready: {', '.join(open_items)} open"
        ),
    }
