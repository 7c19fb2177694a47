"""Events and triggers in the store.

- ``decide``: one transaction per event, or for the events that arrive together (one commit for many: the events
  waiting while a transaction runs go in the next). An id stored less than ``DUPLICATE_S`` ago makes the event a
  duplicate (the earlier one is returned), so a re-delivered event causes nothing twice. Whether a trigger may
  fire for a key now is one statement: an upsert of ``trigger_keys`` that inserts the key, or moves its
  ``next_allowed_at`` on only if that has passed, returning the row only when it wrote it, so of two replicas
  receiving the same event at once exactly one fires. A debounced trigger's event is held in the key's row
  instead, with a due time.
- The cooldowns this store has seen are remembered (``_until``): a key's ``next_allowed_at`` only ever moves
  forward, and only once it has passed, so while a remembered time is still ahead it is exactly the database's.
  An event all of whose claims fall in such a cooldown (or that matched no trigger) changes nothing but its own
  record, so it is decided here without a transaction and its record is written behind by the group-commit writer
  (``EventInsert``, visible to this store's reads at once, durable within milliseconds). The duplicate check still
  holds: an id generated for the event is new; one the caller gave is looked up among the events written behind
  and not yet durable (``_behind``), then in the database.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy import Connection, Insert, Select, bindparam, insert, select, update

from storage import driver_sql
from storage.errors import Duplicate
from storage.models import EventRow, TriggerKeyRow, TriggerRow
from storage.records import DUPLICATE_S, STARTING, Claim, EventInsert, EventRecord, dumps, iso_time, loads
from storage.sessions import Sessions
from storage.writer import StepWriter

__all__ = ["DUPLICATE_S", "STARTING", "Claim", "EventRecord", "EventStore", "TriggerStore", "iso_time"]

MAX_REMEMBERED = 65_536  # cooldowns remembered per store; past it, the ones that have ended go first


Decided = tuple[EventRecord, bool, dict[str, tuple[str, float | None]]]
"""What ``decide`` answers: the event, whether it is new, and per trigger its verdict with a time."""


@dataclass(slots=True, eq=False)
class _Decision:
    """An event waiting for its transaction: its row but the outcome, what it claims, and then what was decided."""

    row: dict[str, Any]
    payload: Any
    claims: list[Claim]
    outcome: dict[str, Any]
    new_id: bool
    result: Decided | None = None
    error: BaseException | None = None


# the statements of a decision, built once (each decision only binds its values)
_SELECT_EVENT: Select[Any] = select(EventRow).where(EventRow.id == bindparam("id"))
_INSERT_EVENT: Insert = insert(EventRow)
_SELECT_UNTIL: Select[Any] = select(TriggerKeyRow.next_allowed_at).where(
    TriggerKeyRow.trigger == bindparam("trigger"), TriggerKeyRow.key == bindparam("key")
)
_claim_upserts: dict[str, Any] = {}


_RECEIVED_AT: Select[Any] = select(EventRow.received_at).where(EventRow.id == bindparam("id"))


def _received_at(dialect: str) -> Select[Any]:
    return _RECEIVED_AT


def _insert_event(dialect: str) -> Insert:
    return _INSERT_EVENT


def _select_until(dialect: str) -> Select[Any]:
    return _SELECT_UNTIL


def _claim_upsert(dialect: str) -> Any:
    """Insert the key's row, or move its ``next_allowed_at`` on if that has passed: returns a row only where it
    wrote one, i.e. where the trigger fires."""
    statement = _claim_upserts.get(dialect)
    if statement is None:
        module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        upsert = module.insert(TriggerKeyRow).values(
            trigger=bindparam("trigger"),
            key=bindparam("key"),
            next_allowed_at=bindparam("until"),
            event_id=bindparam("event_id"),
            fired_at=bindparam("now"),
        )
        statement = _claim_upserts[dialect] = upsert.on_conflict_do_update(
            index_elements=[TriggerKeyRow.trigger, TriggerKeyRow.key],
            set_={
                "next_allowed_at": upsert.excluded.next_allowed_at,
                "event_id": upsert.excluded.event_id,
                "fired_at": upsert.excluded.fired_at,
            },
            where=TriggerKeyRow.next_allowed_at <= upsert.excluded.fired_at,
        ).returning(TriggerKeyRow.trigger, TriggerKeyRow.key)
    return statement


def _stored(
    outcome: dict[str, Any], claims: list[Claim], verdicts: dict[str, tuple[str, float | None]], now: float
) -> dict[str, Any]:
    """An event's outcome as it is stored: each claim that did not fire added to ``suppressed`` (reason and until
    when), and those that fired under ``STARTING`` until the caller records their runs (a re-delivery after a
    crash starts them)."""
    held = [
        {
            "trigger": c.trigger,
            "reason": verdicts[c.trigger][0],
            "until": iso_time(verdicts[c.trigger][1] or now),
            "key": c.key,
        }
        for c in claims
        if verdicts[c.trigger][0] != "fire"
    ]
    stored = {**outcome, "suppressed": [*outcome.get("suppressed", []), *held]}
    starting = [{"trigger": c.trigger, "key": c.key} for c in claims if verdicts[c.trigger][0] == "fire"]
    if starting:
        stored[STARTING] = starting
    return stored


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

    def __init__(self, sessions: Sessions, dialect: str, writer: StepWriter) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._writer = writer
        self._until: dict[tuple[str, str], float] = {}  # (trigger, key): a next_allowed_at seen in the database
        self._behind: dict[str, tuple[int, EventRecord]] = {}  # written behind, not known durable: (sequence, event)
        self._queue: list[_Decision] = []  # decisions waiting for a transaction
        self._turn = anyio.Lock()  # held by the one deciding a batch

    async def decide(
        self,
        event_id: str,
        type: str,
        key: str | None,
        payload_json: str,
        source: str,
        claims: list[Claim],
        outcome: dict[str, Any],
        *,
        new_id: bool = False,
        payload: Any = None,
    ) -> tuple[EventRecord, bool, dict[str, tuple[str, float | None]]]:
        """Take an event and decide its triggers in one transaction: a duplicate id (stored less than
        ``DUPLICATE_S`` ago) returns that event and decides nothing; else each ``(trigger, key, cooldown_s)`` of
        ``claims`` is claimed (see ``_claim``: None where it fires, else until when it may not), and the event is
        stored with ``outcome`` and its suppressions. Returns the event, whether it is new, and per trigger what
        was decided: ``("fire", None)``, ``("cooldown", until)`` or ``("debounced", due)``. ``new_id``: the id was
        generated for this event, so it cannot be a duplicate; ``payload``: the payload ``payload_json`` encodes, if the
        caller has it (else it is decoded).

        An event that can change nothing but its own record (module docstring) is decided without a transaction;
        the others that arrive together share one (``_batched``)."""
        now = self._sessions.clock()
        self._forget_durable()
        if not new_id:
            earlier = self._behind.get(event_id)
            if earlier is not None:  # not durable yet, so not in the database for the checks below to find
                return earlier[1], False, {}
        value = loads(payload_json) if payload is None else payload
        row = {"id": event_id, "type": type, "key": key, "payload": payload_json, "source": source, "received_at": now}
        held = self._held(claims, now)
        if held is not None and (new_id or await self._is_new(event_id, now)):
            verdicts: dict[str, tuple[str, float | None]] = {
                claim.trigger: ("cooldown", until) for claim, until in zip(claims, held, strict=True)
            }
            stored = _stored(outcome, claims, verdicts, now)
            event = EventRecord(event_id, type, key, value, source, stored, now)
            sequence = self._writer.submit(EventInsert({**row, "outcome": dumps(stored)}))
            self._behind[event_id] = (sequence, event)
            return event, True, verdicts
        try:
            decided = await self._batched(_Decision(row, value, claims, outcome, new_id))
        except Duplicate:  # another process took the same id meanwhile: its claims stand, ours were rolled back
            existing = await self.get(event_id)
            assert existing is not None
            return existing, False, {}
        for claim in claims:  # what the transaction saw, for the events that follow
            verdict, until = decided[2].get(claim.trigger, ("", None))
            if verdict == "fire" and claim.cooldown_s > 0:
                self._remember(claim, now + claim.cooldown_s, now)
            elif verdict == "cooldown" and until is not None:
                self._remember(claim, until, now)
        return decided

    async def _batched(self, decision: _Decision) -> Decided:
        """Decide ``decision`` in a transaction with the others waiting: the first waiter to get the turn takes the
        whole queue into one transaction (one commit for all), the others find theirs done when their turn comes.
        Decisions are independent of each other but for their order, which the queue keeps."""
        self._queue.append(decision)
        try:
            async with self._turn:
                if decision.result is None and decision.error is None:
                    batch, self._queue = self._queue, []
                    with anyio.CancelScope(shield=True):  # taken from the queue: decided even if this caller goes
                        await self._decide_batch(batch)
        finally:
            if decision.result is None and decision.error is None and decision in self._queue:
                self._queue.remove(decision)  # cancelled while waiting: never decided
        if decision.error is not None:
            raise decision.error
        assert decision.result is not None
        return decision.result

    async def _decide_batch(self, batch: list[_Decision]) -> None:
        """Decide ``batch`` in one transaction, and give each its result, or the error that prevented it."""
        try:
            results = await self._sessions.change(lambda connection: self._write_all(connection, batch))
        except Duplicate as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for decision in batch:  # an id taken by another process: decide each alone to find whose
                    await self._decide_batch([decision])
            return
        except BaseException as exc:  # each caller raises it as its own
            for decision in batch:
                decision.error = exc
            return
        for decision, result in zip(batch, results, strict=True):
            decision.result = result

    def _write_all(self, connection: Connection, batch: list[_Decision]) -> list[Decided]:
        """Decide each of ``batch`` in order; the new events' records are inserted together at the end. On
        SQLite, a batch of events with new ids whose claims are plain cooldowns of distinct keys (a burst of
        events for many entities: nothing in it can depend on another) has all its claims made in one multi-row
        upsert (``_claim_batch``) rather than one statement each."""
        results: list[Decided] = []
        rows: list[dict[str, Any]] = []
        taken: dict[str, EventRecord] = {}  # the ids this batch stores, for a duplicate within it
        claimed = self._claim_batch(connection, batch)
        for decision in batch:
            first = taken.get(decision.row["id"])
            if first is not None:
                decided: Decided = (first, False, {})
            else:
                decided = self._write(connection, decision, rows, claimed)
            if decided[1]:
                taken[decided[0].id] = decided[0]
            results.append(decided)
        if rows:
            driver_sql.execute(connection, "events", _insert_event, rows)
        return results

    def _claim_batch(self, connection: Connection, batch: list[_Decision]) -> set[tuple[str, str]] | None:
        """The (trigger, key) pairs that fire, claimed together for the whole batch, or None where the batch does
        not qualify (see ``_write_all``) and each claim is made in turn."""
        if connection.dialect.paramstyle != "qmark" or len(batch) < 2:
            return None
        values: list[dict[str, Any]] = []
        pairs: set[tuple[str, str]] = set()
        for decision in batch:
            if not decision.new_id:
                return None
            now = decision.row["received_at"]
            for claim in decision.claims:
                if claim.debounce_s is not None or (claim.trigger, claim.key) in pairs:
                    return None
                pairs.add((claim.trigger, claim.key))
                values.append(
                    {
                        "trigger": claim.trigger,
                        "key": claim.key,
                        "event_id": decision.row["id"],
                        "now": now,
                        "until": now + claim.cooldown_s,
                    }
                )
        if not values:
            return None
        return {
            (row.trigger, row.key) for row in driver_sql.insert_returning(connection, "claim", _claim_upsert, values)
        }

    def _write(
        self,
        connection: Connection,
        decision: _Decision,
        rows: list[dict[str, Any]],
        claimed: set[tuple[str, str]] | None,
    ) -> Decided:
        """Decide one event: its claims now (or as ``claimed`` for the batch), its record to ``rows`` (a new one)
        or updated (a stale id's)."""
        event_id, now = decision.row["id"], decision.row["received_at"]
        found = None if decision.new_id else connection.execute(_SELECT_EVENT, {"id": event_id}).first()
        if found is not None and found.received_at > now - DUPLICATE_S:
            return _event(found), False, {}
        results: dict[str, tuple[str, float | None]] = {}
        for claim in decision.claims:
            if claimed is not None and (claim.trigger, claim.key) in claimed:
                results[claim.trigger] = ("fire", None)
            elif claimed is not None:  # in a cooldown: until when
                pair = {"trigger": claim.trigger, "key": claim.key}
                found_until = driver_sql.first(connection, "cooldown until", _select_until, pair)
                results[claim.trigger] = ("cooldown", float(found_until[0]) if found_until is not None else now)
            elif claim.debounce_s is None:
                until = self._claim(connection, claim, event_id, now)
                results[claim.trigger] = ("fire", None) if until is None else ("cooldown", until)
            else:
                results[claim.trigger] = self._debounce(connection, claim, event_id, now)
        stored = _stored(decision.outcome, decision.claims, results, now)
        row = {**decision.row, "outcome": dumps(stored)}
        if found is not None:
            connection.execute(update(EventRow).where(EventRow.id == event_id).values(**row))
        else:
            rows.append(row)
        event = EventRecord(event_id, row["type"], row["key"], decision.payload, row["source"], stored, now)
        return event, True, results

    def _held(self, claims: list[Claim], now: float) -> list[float] | None:
        """Until when each claim is in a cooldown this store has seen, or None unless all of them are."""
        found = []
        for claim in claims:
            until = self._until.get((claim.trigger, claim.key))
            if until is None or until <= now:
                return None
            found.append(until)
        return found

    def _remember(self, claim: Claim, until: float, now: float) -> None:
        remembered = self._until
        if len(remembered) >= MAX_REMEMBERED and (claim.trigger, claim.key) not in remembered:
            for pair in [pair for pair, at in remembered.items() if at <= now]:
                del remembered[pair]
            while len(remembered) >= MAX_REMEMBERED * 3 // 4:  # all still running: forget the oldest seen
                del remembered[next(iter(remembered))]
        remembered[(claim.trigger, claim.key)] = until

    def _forget_durable(self) -> None:
        """Drop the events written behind that are durable now (the database has them): what ``_behind`` keeps
        is only what the writer has not committed yet."""
        behind, durable = self._behind, self._writer.durable
        while behind:
            oldest = next(iter(behind))
            if behind[oldest][0] > durable:
                break
            del behind[oldest]

    async def _is_new(self, event_id: str, now: float) -> bool:
        """Whether no event with this id was stored less than ``DUPLICATE_S`` ago (for the ones written behind and
        not durable yet, look in ``_behind`` first)."""
        found = await self._sessions.point("event received", _received_at, {"id": event_id})
        return found is None or found[0] <= now - DUPLICATE_S

    def _claim(self, connection: Connection, claim: Claim, event_id: str, now: float) -> float | None:
        values = {"trigger": claim.trigger, "key": claim.key, "event_id": event_id, "now": now}
        values["until"] = now + claim.cooldown_s  # the upsert's next_allowed_at
        if driver_sql.first(connection, "claim", _claim_upsert, values) is not None:
            return None
        found = driver_sql.first(connection, "cooldown until", _select_until, values)
        return float(found[0]) if found is not None else now

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
        await self._writer.flush()  # the events written behind, too
        query = select(EventRow).where(EventRow.id == event_id)
        row = await self._sessions.query(lambda connection: connection.execute(query).first())
        return None if row is None else _event(row)

    async def list(self, type: str | None = None, key: str | None = None, limit: int = 20) -> list[EventRecord]:
        """Newest first."""
        await self._writer.flush()
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
