"""Support ticket routing: classify a ticket, then a handler per category drafts the reply and picks the queue.

``classify`` returns the ticket with its ``category``, so its output is exactly what every handler accepts: a chain
``[classify, route on input.category]`` needs no input templates. Keyword rules keep it deterministic.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["billing", "classify", "general", "outage", "security"]

CATEGORIES: Final = ("security", "outage", "billing", "general")
PRIORITIES: Final = ("low", "normal", "high", "urgent")
SLA_HOURS: Final[dict[str, int]] = {"urgent": 1, "high": 4, "normal": 24, "low": 72}

#: Keywords per category, most specific first. Ties between categories go to the earlier one in ``CATEGORIES``.
KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    "security": (
        "phishing",
        "breach",
        "hacked",
        "compromised",
        "suspicious login",
        "unauthorized",
        "unauthorised",
        "vulnerability",
        "malware",
        "ransomware",
        "leaked",
        "2fa",
        "stolen",
    ),
    "outage": (
        "outage",
        "down",
        "not loading",
        "unavailable",
        "502",
        "503",
        "504",
        "timing out",
        "timeout",
        "cannot connect",
        "can't connect",
        "degraded",
        "not responding",
    ),
    "billing": (
        "invoice",
        "refund",
        "charged twice",
        "double charged",
        "overcharged",
        "charged",
        "billing",
        "payment",
        "credit card",
        "subscription",
        "receipt",
        "vat",
    ),
}
#: Words that set a category's starting priority one level higher.
_SEVERE: Final[dict[str, tuple[str, ...]]] = {
    "security": ("breach", "hacked", "compromised", "ransomware", "leaked", "stolen", "unauthorized", "unauthorised"),
    "outage": ("all users", "everyone", "production", "completely", "entire", "whole team"),
    "billing": ("charged twice", "double charged", "overcharged"),
}
_BASE_PRIORITY: Final = {"security": "high", "outage": "high", "billing": "normal", "general": "low"}
_URGENT_WORDS: Final = ("urgent", "asap", "immediately", "critical")
QUEUES: Final[dict[str, str]] = {
    "billing": "billing-ops",
    "outage": "sre-oncall",
    "security": "security-incident-response",
    "general": "support-tier1",
}


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


def _sla(priority: str) -> int:
    if priority not in SLA_HOURS:
        raise ValueError(f"unknown priority {priority!r}; expected one of {', '.join(PRIORITIES)}")
    return SLA_HOURS[priority]


def _raise(priority: str, steps: int = 1) -> str:
    return PRIORITIES[min(len(PRIORITIES) - 1, PRIORITIES.index(priority) + steps)]


def classify(subject: str, body: str) -> dict[str, Any]:
    """Classify a support ticket as billing, outage, security or general, with a priority.

    Keywords in the subject count twice. The category with the highest count wins (ties: security, outage,
    billing); with no keyword it is ``general``. Priority starts at the category's level (security and outage
    ``high``, billing ``normal``, general ``low``) and rises one level for severe words (``breach``,
    ``all users``, ``charged twice``) and one for urgency words (``urgent``, ``asap``).

    Args:
        subject: The ticket's subject line.
        body: The ticket's text.

    Returns:
        The ticket (``subject``, ``body``) with ``category``, ``priority`` (``low``, ``normal``, ``high`` or
        ``urgent``), ``keywords`` (those matched for the category) and ``confidence`` (0 to 1).
    """
    head, text = subject.casefold(), f"{subject}\n{body}".casefold()
    scores: dict[str, int] = {}
    matched: dict[str, list[str]] = {}
    for category, words in KEYWORDS.items():
        hits = [word for word in words if _has(text, word)]
        # "charged twice" also contains "charged": count the longer phrase only
        hits = [w for w in hits if not any(w != other and w in other for other in hits)]
        matched[category] = hits
        scores[category] = sum(2 if _has(head, word) else 1 for word in hits)
    best = max(CATEGORIES[:-1], key=lambda c: (scores[c], -CATEGORIES.index(c)))
    total = sum(scores.values())
    if scores[best] == 0:
        category, confidence, keywords = "general", 0.5, []
    else:
        category, confidence, keywords = best, round(scores[best] / total, 2), matched[best]

    priority = _BASE_PRIORITY[category]
    if any(_has(text, word) for word in _SEVERE.get(category, ())):
        priority = _raise(priority)
    if any(_has(text, word) for word in _URGENT_WORDS):
        priority = _raise(priority)
    return {
        "subject": subject,
        "body": body,
        "category": category,
        "priority": priority,
        "keywords": keywords,
        "confidence": confidence,
    }


def _reply(subject: str, paragraphs: list[str]) -> str:
    return "\n\n".join(
        [
            "Hello,",
            f'Thank you for contacting us about "{subject.strip()}".',
            *paragraphs,
            "Best regards,\nThe Support Team",
        ]
    )


def _result(category: str, subject: str, priority: str, response: str, actions: list[str]) -> dict[str, Any]:
    return {
        "category": category,
        "subject": subject,
        "queue": QUEUES[category],
        "priority": priority,
        "sla_hours": _sla(priority),
        "response": response,
        "actions": actions,
    }


def billing(
    subject: str,
    body: str,
    category: str = "billing",
    priority: str = "normal",
    keywords: list[str] | None = None,
    confidence: float | None = None,
) -> dict[str, Any]:
    """Draft a reply to a billing ticket (duplicate charges, refunds, invoice copies) for the billing queue.

    Args:
        subject: The ticket's subject line.
        body: The ticket's text.
        category: The category ``classify`` gave (informational).
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        keywords: The keywords ``classify`` matched.
        confidence: ``classify``'s confidence (informational).

    Returns:
        ``category``, ``subject``, ``queue``, ``priority``, ``sla_hours``, ``response`` (the drafted reply) and
        ``actions`` (what the assignee should do).
    """
    text = f"{subject}\n{body}".casefold()
    paragraphs: list[str] = []
    actions: list[str] = []
    if any(_has(text, w) for w in ("charged twice", "double charged", "overcharged", "duplicate")):
        paragraphs.append(
            "We understand how worrying an unexpected charge is. Our billing team will compare the charges on your "
            "account with your invoices and, if a payment was taken twice, refund the duplicate to the original "
            "payment method; refunds usually arrive within 5-7 business days."
        )
        actions += ["compare card charges with issued invoices", "refund the duplicate payment if confirmed"]
    elif _has(text, "refund"):
        paragraphs.append(
            "We have passed your refund request to our billing team, who will check it against our refund policy "
            "and confirm the outcome and amount by email."
        )
        actions.append("check the refund request against the refund policy")
    if any(_has(text, w) for w in ("invoice", "receipt", "vat")):
        paragraphs.append(
            "You can download every invoice and receipt under Settings > Billing; we will also email a copy of the "
            "one you mention."
        )
        actions.append("email the requested invoice copy")
    if not paragraphs:
        paragraphs.append("Our billing team is reviewing your account and will follow up with the details.")
        actions.append("review the account's billing history")
    paragraphs.append(f"You will hear from us within {_sla(priority)} hours.")
    return _result("billing", subject, priority, _reply(subject, paragraphs), actions)


def outage(
    subject: str,
    body: str,
    category: str = "outage",
    priority: str = "high",
    keywords: list[str] | None = None,
    confidence: float | None = None,
) -> dict[str, Any]:
    """Draft a reply to an outage report and page the on-call engineers' queue.

    Args:
        subject: The ticket's subject line.
        body: The ticket's text.
        category: The category ``classify`` gave (informational).
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        keywords: The keywords ``classify`` matched.
        confidence: ``classify``'s confidence (informational).

    Returns:
        ``category``, ``subject``, ``queue``, ``priority``, ``sla_hours``, ``response`` and ``actions``.
    """
    _sla(priority)
    codes = sorted(set(re.findall(r"\b5\d\d\b", f"{subject} {body}")))
    seen = f" (we noted the {', '.join(codes)} error{'s' if len(codes) > 1 else ''} you reported)" if codes else ""
    article = "an" if priority[0] in "aeiou" else "a"
    paragraphs = [
        f"We are treating this as {article} {priority}-priority incident{seen}. Our on-call engineers have been "
        "paged and are investigating; live updates are posted at status.example.com.",
        "To help us narrow it down, please reply with when the problem started, the affected URL or region, and "
        "whether it affects all of your users or only some.",
    ]
    actions = ["page the on-call engineer", "check monitoring and the status page for an open incident"]
    if priority == "urgent":
        actions.append("open a public incident on the status page")
    return _result("outage", subject, priority, _reply(subject, paragraphs), actions)


def security(
    subject: str,
    body: str,
    category: str = "security",
    priority: str = "high",
    keywords: list[str] | None = None,
    confidence: float | None = None,
) -> dict[str, Any]:
    """Draft a reply to a security report and hand it to the incident-response queue.

    Args:
        subject: The ticket's subject line.
        body: The ticket's text.
        category: The category ``classify`` gave (informational).
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        keywords: The keywords ``classify`` matched.
        confidence: ``classify``'s confidence (informational).

    Returns:
        ``category``, ``subject``, ``queue``, ``priority``, ``sla_hours``, ``response`` and ``actions``.
    """
    _sla(priority)
    text = f"{subject}\n{body}".casefold()
    paragraphs = [
        "Your report has been escalated to our security team. We will never ask you for your password or "
        "one-time codes, so please do not send them to anyone, including us."
    ]
    actions = ["open a security incident", "preserve the relevant logs"]
    if _has(text, "phishing"):
        paragraphs.append(
            "Please forward the suspicious message as an attachment to security@example.com and do not click any "
            "links in it."
        )
        actions.append("block the phishing sender and links")
    if any(_has(text, w) for w in ("hacked", "compromised", "suspicious login", "unauthorized", "unauthorised")):
        paragraphs.append(
            "As a precaution, reset your password now, sign out of all sessions under Settings > Security and turn "
            "on two-factor authentication."
        )
        actions += ["review the account's recent sign-ins", "revoke active sessions if access looks unauthorised"]
    return _result("security", subject, priority, _reply(subject, paragraphs), actions)


def general(
    subject: str,
    body: str,
    category: str = "general",
    priority: str = "low",
    keywords: list[str] | None = None,
    confidence: float | None = None,
) -> dict[str, Any]:
    """Draft a reply to a general question for the first-line support queue.

    Args:
        subject: The ticket's subject line.
        body: The ticket's text.
        category: The category ``classify`` gave (informational).
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        keywords: The keywords ``classify`` matched.
        confidence: ``classify``'s confidence (informational).

    Returns:
        ``category``, ``subject``, ``queue``, ``priority``, ``sla_hours``, ``response`` and ``actions``.
    """
    paragraphs = [
        f"A member of our support team will reply within {_sla(priority)} hours. In the meantime, the help "
        "centre at help.example.com answers the most common questions.",
    ]
    actions = ["answer the question or link the matching help-centre article"]
    return _result("general", subject, priority, _reply(subject, paragraphs), actions)


# -- a reply refined until it meets the support team's checklist (the refine pattern) ----------------------------

CHECKLIST: dict[str, str] = {
    "greeting": "open with a greeting",
    "subject": "name what the customer wrote about",
    "apology": "acknowledge the inconvenience",
    "timeline": "say when they will hear back",
    "next_steps": "tell them what happens next",
    "sign_off": "sign off as the support team",
}


def draft_reply(subject: str, body: str, priority: str = "normal", missing: list[str] | None = None) -> dict[str, Any]:
    """Draft a reply to a ticket: a short first answer, or (given ``missing``, the checklist items a review found
    missing) the same answer with those parts added.

    Args:
        subject: The ticket's subject line.
        body: The ticket's text.
        priority: ``low``, ``normal``, ``high`` or ``urgent`` (sets the promised timeline).
        missing: Checklist items to add (see ``grade_reply``); none for a first draft.

    Returns:
        ``subject``, ``body``, ``priority``, the ``response`` text and the checklist items it ``covers``.
    """
    covers = ["greeting", "subject"] if not missing else sorted({"greeting", "subject", *missing} & set(CHECKLIST))
    parts = {
        "greeting": "Hello,",
        "subject": f'Thank you for writing to us about "{subject.strip()}".',
        "apology": "We are sorry for the trouble this has caused.",
        "timeline": f"You will hear from us within {_sla(priority)} hours.",
        "next_steps": "A member of our team is looking into it and will reply with what we found.",
        "sign_off": "Best regards,\nThe Support Team",
    }
    response = "\n\n".join(parts[item] for item in CHECKLIST if item in covers)
    return {"subject": subject, "body": body, "priority": priority, "response": response, "covers": covers}


def grade_reply(response: str, covers: list[str] | None = None, **_: Any) -> dict[str, Any]:
    """Review a drafted reply against the support team's checklist.

    Each item is checked in the text itself (a greeting at the start, an apology, a timeline in hours, next steps, a
    sign-off), not taken from what the drafter claims to cover.

    Returns:
        ``score`` (the share of checklist items met, 0 to 1), the ``missing`` items and a ``feedback`` sentence each.
    """
    text = response.casefold()
    met = {
        "greeting": text.startswith(("hello", "hi", "dear")),
        "subject": "about " in text or "regarding " in text,
        "apology": "sorry" in text or "apolog" in text,
        "timeline": re.search(r"within \d+ hours?", text) is not None,
        "next_steps": "looking into" in text or "next step" in text or "will reply" in text,
        "sign_off": "regards" in text or "sincerely" in text,
    }
    missing = [item for item, ok in met.items() if not ok]
    return {
        "score": round(sum(met.values()) / len(met), 3),
        "missing": missing,
        "feedback": [CHECKLIST[item] for item in missing],
    }
