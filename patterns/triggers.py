"""Event triggers: an event starts the workflows of the triggers it matches, at most once per cooldown per entity.

``emit`` stores the event (an id stored in the last 24 h makes it a duplicate, which starts nothing), then, for
each enabled trigger whose ``on`` matches its type and whose ``when`` holds, evaluates the entity ``key`` and asks
the store whether the trigger may fire for that key (``EventStore.claim``: one upsert, so of two replicas receiving
the same event exactly one fires). A fired trigger starts its workflow with the event id in the run's idempotency
key (``event:{id}:{trigger}``: an event re-delivered after a crash finds the run it started) and ``tags.trigger``
and ``tags.event_id``. The answer, also stored with the event, says what happened: ``fired`` (trigger, run id),
``suppressed`` (trigger, ``duplicate`` or ``cooldown``, until when) and ``skipped`` (trigger, why: an expression
that failed on this event, or a workflow that refused its input). Triggers of other types are not listed.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from patterns import contracts
from patterns.errors import InvalidStep, PatternError
from patterns.expressions import ExpressionError, compile_expression
from patterns.planning import RunOptions
from patterns.templates import compile_template
from registry.triggers import TriggerSpec
from storage import dumps
from storage.events import DUPLICATE_S

if TYPE_CHECKING:
    from patterns.engine import Engine

EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_KEY_CHARS = 512
MAX_EVENT_ID_CHARS = 200


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_event(type: str, key: Any, event_id: Any) -> None:
    """Raise ``InvalidStep`` naming what is wrong with an event's type, key or id."""
    if not isinstance(type, str) or not EVENT_TYPE.match(type):
        raise InvalidStep(
            f"event type {str(type)[:80]!r} is not allowed: 1 to 128 letters, digits and . _ : - (starting with a "
            "letter or digit), e.g. contract.renewal_due"
        )
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS):
        raise InvalidStep(f"an event's key is a string of 1 to {MAX_KEY_CHARS} characters, or absent")
    if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS):
        raise InvalidStep(f"an event id is a string of 1 to {MAX_EVENT_ID_CHARS} characters, or absent")


def _key_of(value: Any) -> str:
    """An entity key as the store keeps it: strings as they are, anything else as canonical JSON."""
    if isinstance(value, str):
        return value[:MAX_KEY_CHARS]
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)[:MAX_KEY_CHARS]


async def emit(
    engine: Engine,
    type: str,
    payload: Any = None,
    *,
    key: str | None = None,
    event_id: str | None = None,
    source: str = "api",
) -> dict[str, Any]:
    """Take an event; returns ``{event_id, duplicate, fired, suppressed, skipped}``.

    Raises:
        InvalidStep: a bad type, key or id; LimitExceeded: a payload over ``max_payload_bytes``.
    """
    check_event(type, key, event_id)
    payload = {} if payload is None else payload
    contracts.check_caller_payload(payload, "payload", engine.limits)
    event_id = event_id or str(uuid.uuid4())
    record, created = await engine.store.events.record(event_id, type, key, dumps(payload), source)
    triggers = [t for t in await engine.registry.triggers() if t.enabled and t.matches(type)]
    if not created:
        until = _iso(record.received_at + DUPLICATE_S)
        return {
            "event_id": event_id,
            "duplicate": True,
            "fired": [],
            "suppressed": [{"trigger": t.name, "reason": "duplicate", "until": until} for t in triggers],
            "skipped": [],
            "first": record.outcome,
        }
    event = {"id": event_id, "type": type, "key": key, "payload": payload, "received_at": _iso(record.received_at)}
    outcome: dict[str, Any] = {"event_id": event_id, "duplicate": False, "fired": [], "suppressed": [], "skipped": []}
    for trigger in triggers:
        await _consider(engine, trigger, event, outcome)
    await engine.store.events.set_outcome(event_id, outcome)
    return outcome


async def _consider(engine: Engine, trigger: TriggerSpec, event: dict[str, Any], outcome: dict[str, Any]) -> None:
    context = {"event": event}
    try:
        if trigger.when is not None and not _truthy(compile_expression(trigger.when).search(context)):
            return  # not for this trigger
        key = compile_expression(trigger.key).search(context) if trigger.key is not None else event["key"]
        value = compile_template(trigger.input, f"trigger {trigger.name}")(context) if trigger.has_input else None
    except (ExpressionError, PatternError) as exc:
        outcome["skipped"].append({"trigger": trigger.name, "reason": f"{getattr(exc, 'message', exc)}"})
        return
    if not trigger.has_input:
        value = event["payload"]
    entity = "" if key is None else _key_of(key)
    until = await engine.store.events.claim(trigger.name, entity, event["id"], trigger.cooldown_s)
    if until is not None:
        outcome["suppressed"].append(
            {"trigger": trigger.name, "reason": "cooldown", "until": _iso(until), "key": entity}
        )
        return
    options = RunOptions(
        idempotency_key=f"event:{event['id']}:{trigger.name}",
        tags={"trigger": trigger.name, "event_id": event["id"]},
    )
    try:
        run = await engine.start_workflow(trigger.workflow, value, options)
    except PatternError as exc:
        outcome["skipped"].append({"trigger": trigger.name, "reason": f"{exc.type}: {exc.message}", "key": entity})
        return
    outcome["fired"].append({"trigger": trigger.name, "run_id": run.id, "key": entity})


def _truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty strings, lists and objects are false."""
    return value not in (None, False, "", [], {})
