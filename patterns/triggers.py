"""Event triggers: an event starts the workflows of the triggers it matches, at most once per cooldown per entity.

``emit`` evaluates, for each enabled trigger whose ``on`` matches the event's type, its ``when``, entity ``key`` and
``input``; then one transaction (``EventStore.decide``) checks the event id (one stored in the last 24 h makes the
event a duplicate, which decides nothing), claims each trigger's key (an upsert that writes only once the key's
cooldown has passed, so of two replicas receiving the same event exactly one fires) and stores the event with what
was suppressed. A fired trigger starts its workflow with the event id in the run's idempotency
key (``event:{id}:{trigger}``: an event re-delivered after a crash finds the run it started) and ``tags.trigger``
and ``tags.event_id``. The answer, also stored with the event, says what happened: ``fired`` (trigger, run id),
``suppressed`` (trigger, ``duplicate``, ``cooldown`` or ``debounced``, until when) and ``skipped`` (trigger, why: an
expression that failed on this event, or a workflow that refused its input). Triggers of other types are not
listed. A debounced event is held in the store (``trigger_keys.due_at``: a durable timer), and ``fire_due``, on
every engine's scheduler pass, starts the run of each burst whose time has come, adding it to that event's outcome.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from patterns import contracts
from patterns.errors import InvalidStep, PatternError
from patterns.expressions import ExpressionError, compile_expression
from patterns.planning import RunOptions
from patterns.templates import compile_template
from registry.triggers import TriggerSpec
from storage.records import DUPLICATE_S, STARTING, Claim, EventRecord, iso_time

if TYPE_CHECKING:
    from patterns.engine import Engine

EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_KEY_CHARS = 512
MAX_EVENT_ID_CHARS = 200


_random = bytearray()  # unread random bytes, 16 for each generated event id


def new_event_id() -> str:
    """A random (version 4) UUID for an event sent without an id. The random bytes are read from the OS 4 KiB at
    a time: one system call per 256 ids rather than one each (a call lets the writer's thread take the
    interpreter, and the event loop then waits to get it back)."""
    if not _random:
        _random.extend(os.urandom(4096))
    h = _random[-16:].hex()
    del _random[-16:]
    variant = "89ab"[int(h[16], 16) & 3]  # RFC 4122: the variant's two high bits are 10
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


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
    payload_json = contracts.check_caller_payload(payload, "payload", engine.limits)
    new_id = event_id is None
    event_id = event_id or new_event_id()
    triggers = [t for t in await engine.registry.triggers() if t.enabled and t.matches(type)]
    received = engine.store.now()
    event = {"id": event_id, "type": type, "key": key, "payload": payload, "received_at": iso_time(received)}
    outcome: dict[str, Any] = {"event_id": event_id, "duplicate": False, "fired": [], "suppressed": [], "skipped": []}
    planned: list[tuple[TriggerSpec, str, Any]] = []  # the triggers that may fire: what they would start
    for trigger in triggers:
        considered = _consider(trigger, event, outcome)
        if considered is not None:
            planned.append((trigger, *considered))
    # the duplicate check, every cooldown decision and the event's record: one transaction
    claims = [
        Claim(trigger.name, entity, trigger.cooldown_s, trigger.debounce_s, trigger.max_wait_s)
        for trigger, entity, _ in planned
    ]
    record, created, decided = await engine.store.events.decide(
        event_id, type, key, payload_json, source, claims, outcome, new_id=new_id, payload=payload
    )
    if not created:
        first = record.outcome
        if first.get(STARTING):  # its first delivery decided to fire but did not get to record the runs
            first = await _start_decided(engine, record)
        until = iso_time(record.received_at + DUPLICATE_S)
        return {
            "event_id": event_id,
            "duplicate": True,
            "fired": [],
            "suppressed": [{"trigger": t.name, "reason": "duplicate", "until": until} for t in triggers],
            "skipped": [],
            "first": first,
        }
    outcome = {name: value for name, value in record.outcome.items() if name != STARTING}
    fired = [(t, entity, value) for t, entity, value in planned if decided.get(t.name, ("fire", None))[0] == "fire"]
    for trigger, entity, value in fired:
        await _start(engine, trigger, entity, value, event_id, outcome)
    if fired:
        await engine.store.events.set_outcome(event_id, outcome)
    return outcome


async def _start_decided(engine: Engine, record: EventRecord) -> dict[str, Any]:
    """Start the runs an event's first delivery decided on but did not record (a crash between the decision and
    the run): each run's idempotency key comes from the event, so a run that did start is found, not doubled.
    Returns the event's outcome as recorded now."""
    triggers = {t.name: t for t in await engine.registry.triggers()}
    outcome = {name: value for name, value in record.outcome.items() if name != STARTING}
    outcome = {**outcome, "fired": list(outcome.get("fired", [])), "skipped": list(outcome.get("skipped", []))}
    for decided in record.outcome[STARTING]:
        trigger = triggers.get(decided["trigger"])
        considered = None if trigger is None else _consider(trigger, _event_of(record), outcome)
        if trigger is None or considered is None:
            reason = "the trigger is gone" if trigger is None else "the trigger no longer takes this event"
            outcome["skipped"].append({"trigger": decided["trigger"], "reason": reason, "key": decided["key"]})
            continue
        await _start(engine, trigger, decided["key"], considered[1], record.id, outcome)
    await engine.store.events.set_outcome(record.id, outcome)
    return outcome


def _event_of(record: EventRecord) -> dict[str, Any]:
    """An event as triggers' expressions see it (``{event}``)."""
    return {
        "id": record.id,
        "type": record.type,
        "key": record.key,
        "payload": record.payload,
        "received_at": iso_time(record.received_at),
    }


async def _start(
    engine: Engine, trigger: TriggerSpec, entity: str, value: Any, event_id: str, outcome: dict[str, Any]
) -> None:
    """Start ``trigger``'s workflow for an event, and say so in ``outcome`` (fired, or skipped with why)."""
    options = RunOptions(
        idempotency_key=f"event:{event_id}:{trigger.name}",
        tags={"trigger": trigger.name, "event_id": event_id},
    )
    try:
        run = await engine.start_workflow(trigger.workflow, value, options)
    except PatternError as exc:
        outcome["skipped"].append({"trigger": trigger.name, "reason": f"{exc.type}: {exc.message}", "key": entity})
        return
    outcome["fired"].append({"trigger": trigger.name, "run_id": run.id, "key": entity})


async def fire_due(engine: Engine) -> int:
    """The scheduler's pass over debounced triggers: start one run with the last event of each burst whose time
    has come (a compare-and-set takes it: one replica fires it, whichever restarted), and add it to that event's
    outcome. Returns how many fired."""
    due = await engine.store.events.due()
    if not due:
        return 0
    triggers = {t.name: t for t in await engine.registry.triggers()}
    fired = 0
    for name, entity, event_id in due:
        trigger = triggers.get(name)
        cooldown = trigger.cooldown_s if trigger is not None else 0.0
        if not await engine.store.events.take_due(name, entity, event_id, cooldown):
            continue  # another replica took it
        record = await engine.store.events.get(event_id)
        if record is None or trigger is None or not trigger.enabled:
            continue  # the event or its trigger is gone, or disabled meanwhile: the burst is dropped
        outcome = {"event_id": record.id, "duplicate": False, "fired": [], "suppressed": [], "skipped": []}
        outcome.update({k: list(v) for k, v in record.outcome.items() if isinstance(v, list)})
        considered = _consider(trigger, _event_of(record), outcome)
        if considered is not None:
            await _start(engine, trigger, entity, considered[1], record.id, outcome)
            fired += 1
        await engine.store.events.set_outcome(record.id, outcome)
    return fired


def _consider(trigger: TriggerSpec, event: dict[str, Any], outcome: dict[str, Any]) -> tuple[str, Any] | None:
    """For a trigger whose type matched: its entity key and the workflow input, or None (its ``when`` is false, or
    an expression failed on this event: then it is in ``outcome["skipped"]``)."""
    context = {"event": event}
    try:
        if trigger.when is not None and not _truthy(compile_expression(trigger.when).search(context)):
            return None  # not for this trigger
        key = compile_expression(trigger.key).search(context) if trigger.key is not None else event["key"]
        value = compile_template(trigger.input, f"trigger {trigger.name}")(context) if trigger.has_input else None
    except (ExpressionError, PatternError) as exc:
        outcome["skipped"].append({"trigger": trigger.name, "reason": f"{getattr(exc, 'message', exc)}"})
        return None
    return ("" if key is None else _key_of(key)), (value if trigger.has_input else event["payload"])


def _truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty strings, lists and objects are false."""
    return value not in (None, False, "", [], {})
