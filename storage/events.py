"""Events and triggers in the store.

- ``decide``: one transaction per event. An id stored less than ``DUPLICATE_S`` ago makes the event a duplicate
  (the earlier one is returned), so a re-delivered event causes nothing twice. Whether a trigger may fire for a key
  now is one statement: an upsert of ``trigger_keys`` that inserts the key, or moves its ``next_allowed_at`` on only
  if that has passed, returning the row only when it wrote it, so of two replicas receiving the same event at once
  exactly one fires. A debounced trigger's event is held in the key's row instead, with a due time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, insert, select, update

from storage.errors import Duplicate
from storage.models import EventRow, TriggerKeyRow, TriggerRow
from storage.records import dumps, loads
from storage.sessions import Sessions

DUPLICATE_S = 86_400.0


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Claim:
    """What an event asks of one trigger's key: fire now unless in cooldown, or (``debounce_s``) be held back."""

    trigger: str
    key: str
    cooldown_s: float
    debounce_s: float | None = None
    max_wait_s: float | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    type: str
    key: str | None
    payload: Any
    source: str
    outcome: dict[str, Any]
    received_at: float


def _event(row: Any) -> EventRecord:
    return EventRecord(
        id=row.id,
        type=row.type,
        key=row.key,
        payload=loads(row.payload),
        source=row.source,
        outcome=loads(row.outcome),
        received_at=row.received_at,
    )


class EventStore:
    """``store.events``: events received, what they caused, and the cooldown of each (trigger, key)."""

    def __init__(self, sessions: Sessions, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    async def decide(
        self,
        event_id: str,
        type: str,
        key: str | None,
        payload_json: str,
        source: str,
        claims: list[Claim],
        outcome: dict[str, Any],
    ) -> tuple[EventRecord, bool, dict[str, tuple[str, float | None]]]:
        """Take an event and decide its triggers in one transaction: a duplicate id (stored less than
        ``DUPLICATE_S`` ago) returns that event and decides nothing; else each ``(trigger, key, cooldown_s)`` of
        ``claims`` is claimed (see ``claim``: None where it fires, else until when it may not), and the event is
        stored with ``outcome`` and its suppressions. Returns the event, whether it is new, and per trigger what
        was decided: ``("fire", None)``, ``("cooldown", until)`` or ``("debounced", due)``."""
        now = self._sessions.clock()

        def write(connection: Connection) -> tuple[EventRecord, bool, dict[str, tuple[str, float | None]]]:
            found = connection.execute(select(EventRow).where(EventRow.id == event_id)).first()
            if found is not None and found.received_at > now - DUPLICATE_S:
                return _event(found), False, {}
            results: dict[str, tuple[str, float | None]] = {}
            for claim in claims:
                if claim.debounce_s is None:
                    until = self._claim(connection, claim.trigger, claim.key, event_id, claim.cooldown_s, now)
                    results[claim.trigger] = ("fire", None) if until is None else ("cooldown", until)
                else:
                    results[claim.trigger] = self._debounce(connection, claim, event_id, now)
            held = [
                {
                    "trigger": c.trigger,
                    "reason": results[c.trigger][0],
                    "until": iso_time(results[c.trigger][1] or now),
                    "key": c.key,
                }
                for c in claims
                if results[c.trigger][0] != "fire"
            ]
            stored = {**outcome, "suppressed": [*outcome.get("suppressed", []), *held]}
            row = {
                "id": event_id,
                "type": type,
                "key": key,
                "payload": payload_json,
                "source": source,
                "outcome": dumps(stored),
                "received_at": now,
            }
            if found is not None:
                connection.execute(update(EventRow).where(EventRow.id == event_id).values(**row))
            else:
                connection.execute(insert(EventRow).values(**row))
            return _event(SimpleNamespace(**row)), True, results

        try:
            return await self._sessions.change(write)
        except Duplicate:  # another process took the same id meanwhile: its claims stand, ours were rolled back
            existing = await self.get(event_id)
            assert existing is not None
            return existing, False, {}

    def _claim(
        self, connection: Connection, trigger: str, key: str, event_id: str, cooldown_s: float, now: float
    ) -> float | None:
        module = importlib.import_module(f"sqlalchemy.dialects.{self._dialect}")
        upsert = module.insert(TriggerKeyRow).values(
            trigger=trigger, key=key, next_allowed_at=now + cooldown_s, event_id=event_id, fired_at=now
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[TriggerKeyRow.trigger, TriggerKeyRow.key],
            set_={"next_allowed_at": now + cooldown_s, "event_id": event_id, "fired_at": now},
            where=TriggerKeyRow.next_allowed_at <= now,
        ).returning(TriggerKeyRow.trigger)
        if connection.execute(upsert).first() is not None:
            return None
        found = connection.execute(
            select(TriggerKeyRow.next_allowed_at).where(TriggerKeyRow.trigger == trigger, TriggerKeyRow.key == key)
        ).scalar()
        return float(found) if found is not None else now

    def _debounce(self, connection: Connection, claim: Claim, event_id: str, now: float) -> tuple[str, float | None]:
        """Hold ``event_id`` back for a debounced trigger: it becomes the key's pending event, due ``debounce_s``
        from now but no later than ``max_wait_s`` after the burst's first event. Within a cooldown it is dropped
        like any other event."""
        module = importlib.import_module(f"sqlalchemy.dialects.{self._dialect}")
        connection.execute(
            module.insert(TriggerKeyRow)
            .values(trigger=claim.trigger, key=claim.key, next_allowed_at=0.0, event_id=event_id, fired_at=0.0)
            .on_conflict_do_nothing(index_elements=[TriggerKeyRow.trigger, TriggerKeyRow.key])
        )
        query = select(TriggerKeyRow).where(TriggerKeyRow.trigger == claim.trigger, TriggerKeyRow.key == claim.key)
        if self._dialect == "postgresql":
            query = query.with_for_update()
        row = connection.execute(query).one()
        if row.pending_event_id is None and row.next_allowed_at > now:
            return "cooldown", float(row.next_allowed_at)
        first = row.first_at if row.pending_event_id is not None and row.first_at is not None else now
        assert claim.debounce_s is not None
        due = now + claim.debounce_s
        if claim.max_wait_s is not None:
            due = min(due, first + claim.max_wait_s)
        connection.execute(
            update(TriggerKeyRow)
            .where(TriggerKeyRow.trigger == claim.trigger, TriggerKeyRow.key == claim.key)
            .values(pending_event_id=event_id, first_at=first, due_at=due)
        )
        return "debounced", due

    async def due(self, limit: int = 50) -> list[tuple[str, str, str]]:
        """Debounced (trigger, key, event id) whose time has come, oldest first."""
        now = self._sessions.clock()
        query = (
            select(TriggerKeyRow.trigger, TriggerKeyRow.key, TriggerKeyRow.pending_event_id)
            .where(TriggerKeyRow.due_at <= now, TriggerKeyRow.pending_event_id.is_not(None))
            .order_by(TriggerKeyRow.due_at)
            .limit(limit)
        )
        rows = await self._sessions.query(lambda connection: connection.execute(query).all())
        return [(row[0], row[1], str(row[2])) for row in rows]

    async def take_due(self, trigger: str, key: str, event_id: str, cooldown_s: float) -> bool:
        """Take a due debounced event to fire it (a compare-and-set on the pending event: one replica wins); its
        cooldown starts now."""
        now = self._sessions.clock()
        statement = (
            update(TriggerKeyRow)
            .where(
                TriggerKeyRow.trigger == trigger,
                TriggerKeyRow.key == key,
                TriggerKeyRow.pending_event_id == event_id,
                TriggerKeyRow.due_at <= now,
            )
            .values(
                pending_event_id=None,
                first_at=None,
                due_at=None,
                next_allowed_at=now + cooldown_s,
                event_id=event_id,
                fired_at=now,
            )
        )
        return await self._sessions.change(lambda connection: connection.execute(statement).rowcount == 1)

    async def set_outcome(self, event_id: str, outcome: dict[str, Any]) -> None:
        statement = update(EventRow).where(EventRow.id == event_id).values(outcome=dumps(outcome))
        await self._sessions.change(lambda connection: connection.execute(statement))

    async def get(self, event_id: str) -> EventRecord | None:
        query = select(EventRow).where(EventRow.id == event_id)
        row = await self._sessions.query(lambda connection: connection.execute(query).first())
        return None if row is None else _event(row)

    async def list(self, type: str | None = None, key: str | None = None, limit: int = 20) -> list[EventRecord]:
        """Newest first."""
        query = select(EventRow).order_by(EventRow.received_at.desc(), EventRow.id.desc()).limit(limit)
        if type is not None:
            query = query.where(EventRow.type == type)
        if key is not None:
            query = query.where(EventRow.key == key)
        return await self._sessions.query(lambda connection: [_event(r) for r in connection.execute(query)])


class TriggerStore:
    """``store.triggers``: the event triggers, by name."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def put(self, name: str, definition: dict[str, Any], definition_hash: str, enabled: bool) -> bool:
        """Insert or replace a trigger. Returns whether anything changed."""
        now = self._sessions.clock()

        def write(connection: Connection) -> bool:
            found = connection.execute(select(TriggerRow).where(TriggerRow.name == name)).first()
            if found is not None and found.definition_hash == definition_hash and found.enabled == enabled:
                return False
            values = {"definition": dumps(definition), "definition_hash": definition_hash, "enabled": enabled}
            if found is None:
                connection.execute(insert(TriggerRow).values(name=name, updated_at=now, **values))
            else:
                connection.execute(update(TriggerRow).where(TriggerRow.name == name).values(updated_at=now, **values))
            return True

        return await self._sessions.change(write)

    async def all(self) -> list[tuple[dict[str, Any], bool]]:
        """Every trigger's definition and whether it is enabled, by name."""
        query = select(TriggerRow.definition, TriggerRow.enabled).order_by(TriggerRow.name)
        rows = await self._sessions.query(lambda connection: connection.execute(query).all())
        return [(dict(loads(row.definition)), bool(row.enabled)) for row in rows]

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        """Enable or disable a trigger. False if there is none by that name."""
        statement = (
            update(TriggerRow).where(TriggerRow.name == name).values(enabled=enabled, updated_at=self._sessions.clock())
        )
        return await self._sessions.change(lambda connection: connection.execute(statement).rowcount == 1)
