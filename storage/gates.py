"""Gates in the store. Every transition is a compare-and-set on the gate's row, so that exactly one decision,
escalation, reminder or time-out wins however many processes try at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select, update

from storage.errors import Duplicate, GateNotFound
from storage.models import GateRow, RunRow
from storage.records import GATE_DECIDED, GATE_EXPIRED, GATE_PENDING, GATE_TIMED_OUT, GateRecord, NewGate, dumps, loads
from storage.sessions import Sessions


def _gate(row: Any) -> GateRecord:
    """A gate record from a ``GateRow`` or a row of its columns."""
    return GateRecord(
        id=row.id,
        run_id=row.run_id,
        path=row.path,
        title=row.title,
        brief=row.brief,
        payload=loads(row.payload),
        payload_schema=loads(row.payload_schema),
        approvers=loads(row.approvers),
        escalate_to=loads(row.escalate_to),
        level=row.level,
        sla_s=row.sla_s,
        sla_at=row.sla_at,
        reminded_level=row.reminded_level,
        on_timeout=row.on_timeout,
        status=row.status,
        decision=row.decision,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
        decided_payload=loads(row.decided_payload),
        payload_hash=row.payload_hash,
        opened_by=row.opened_by,
        consumed_at=row.consumed_at,
        history=loads(row.history),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _maybe_gate(row: Any) -> GateRecord | None:
    return None if row is None else _gate(row)


# The scheduler's questions, asked several times a second: built once (building one costs more than asking it).
_DUE = (
    select(GateRow)
    .where(
        GateRow.status == GATE_PENDING,
        or_(
            GateRow.sla_at <= bindparam("now"),
            and_(
                GateRow.reminded_level < GateRow.level,
                GateRow.sla_at - GateRow.sla_s * bindparam("keep") <= bindparam("now"),
            ),
        ),
    )
    .order_by(GateRow.sla_at)
)
_WAITING_WITH_ANSWERS = (
    select(RunRow.id)
    .join(GateRow, GateRow.run_id == RunRow.id)
    .where(
        RunRow.status == "waiting",
        GateRow.status.in_([GATE_DECIDED, GATE_TIMED_OUT]),
        GateRow.consumed_at.is_(None),
    )
    .distinct()
)


class GateStore:
    """``store.gates``: gates and their transitions."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def create(self, new: NewGate) -> tuple[GateRecord, bool]:
        """Open a gate; a gate already open at the same run and path is returned instead (``created`` False)."""
        now = self._sessions.clock()
        row = GateRow(
            id=new.id,
            run_id=new.run_id,
            path=new.path,
            title=new.title,
            brief=new.brief,
            payload=dumps(new.payload),
            payload_schema=None if new.payload_schema is None else dumps(new.payload_schema),
            approvers=dumps(new.approvers),
            escalate_to=dumps(new.escalate_to),
            level=0,
            sla_s=new.sla_s,
            sla_at=now + new.sla_s,
            reminded_level=-1,
            on_timeout=new.on_timeout,
            status=GATE_PENDING,
            opened_by=new.opened_by,
            history=dumps([{"at": now, "event": "opened", "to": new.approvers}]),
            created_at=now,
            updated_at=now,
        )
        try:
            await self._sessions.insert(row)
            return _gate(row), True
        except Duplicate:
            existing = await self.at(new.run_id, new.path)
            if existing is None:
                raise
            return existing, False

    async def get(self, gate_id: str) -> GateRecord:
        query = select(GateRow).where(GateRow.id == gate_id)
        found = await self._sessions.query(lambda connection: _maybe_gate(connection.execute(query).first()))
        if found is None:
            raise GateNotFound(gate_id)
        return found

    async def at(self, run_id: str, path: str) -> GateRecord | None:
        query = select(GateRow).where(GateRow.run_id == run_id, GateRow.path == path)
        return await self._sessions.query(lambda connection: _maybe_gate(connection.execute(query).first()))

    async def find(self, status: str | None = None, run_id: str | None = None, limit: int = 100) -> list[GateRecord]:
        """Oldest first: the gate waiting longest is the most urgent."""
        query = select(GateRow).order_by(GateRow.created_at, GateRow.id).limit(limit)
        if status is not None:
            query = query.where(GateRow.status == status)
        if run_id is not None:
            query = query.where(GateRow.run_id == run_id)
        return await self._gates(query)

    async def _gates(self, query: Select[GateRow]) -> list[GateRecord]:
        return await self._sessions.query(lambda connection: [_gate(r) for r in connection.execute(query)])

    async def _transition(
        self, gate: GateRecord, conditions: Sequence[Any], values: dict[str, Any], event: dict[str, Any]
    ) -> GateRecord | None:
        """Apply ``values`` if the row still matches ``conditions``; None when another writer got there first."""
        now = self._sessions.clock()
        history = dumps([*gate.history, {"at": now, **event}])
        statement = (
            update(GateRow).where(GateRow.id == gate.id, *conditions).values(**values, history=history, updated_at=now)
        )
        if await self._sessions.execute(statement) != 1:
            return None
        return await self.get(gate.id)

    async def decide(
        self,
        gate: GateRecord,
        decision: str,
        by: str,
        comment: str | None,
        payload: Any,
        payload_hash: str,
    ) -> GateRecord | None:
        """Record the decision if the gate is still pending (None when another decision won)."""
        return await self._transition(
            gate,
            [GateRow.status == GATE_PENDING],
            {
                "status": GATE_DECIDED,
                "decision": decision,
                "decided_by": by,
                "decided_at": self._sessions.clock(),
                "comment": comment,
                "decided_payload": None if payload is None else dumps(payload),
                "payload_hash": payload_hash,
            },
            {"event": "decided", "decision": decision, "by": by},
        )

    async def escalate(self, gate: GateRecord) -> GateRecord | None:
        """Move the gate to the next name in ``escalate_to`` with a fresh SLA."""
        target = gate.escalate_to[gate.level]
        return await self._transition(
            gate,
            [GateRow.status == GATE_PENDING, GateRow.level == gate.level],
            {"level": gate.level + 1, "sla_at": self._sessions.clock() + gate.sla_s},
            {"event": "escalated", "to": target, "level": gate.level + 1},
        )

    async def remind(self, gate: GateRecord) -> GateRecord | None:
        """Record the reminder at 80% of the current level's SLA (once per level)."""
        return await self._transition(
            gate,
            [GateRow.status == GATE_PENDING, GateRow.level == gate.level, GateRow.reminded_level < gate.level],
            {"reminded_level": gate.level},
            {"event": "reminder", "to": gate.current_approvers, "level": gate.level},
        )

    async def time_out(self, gate: GateRecord) -> GateRecord | None:
        """The last SLA passed with ``on_timeout: fail``."""
        return await self._transition(
            gate,
            [GateRow.status == GATE_PENDING, GateRow.level == gate.level],
            {"status": GATE_TIMED_OUT, "decided_by": "system:sla", "decided_at": self._sessions.clock()},
            {"event": "timed_out"},
        )

    async def expire(self, run_id: str, reason: str) -> int:
        """Expire the run's pending gates (the run was cancelled). Returns how many."""
        expired = 0
        for gate in await self.find(GATE_PENDING, run_id):
            if await self._transition(
                gate, [GateRow.status == GATE_PENDING], {"status": GATE_EXPIRED}, {"event": "expired", "why": reason}
            ):
                expired += 1
        return expired

    async def due(self, now: float, reminder_fraction: float) -> list[GateRecord]:
        """Pending gates whose SLA has passed or whose reminder is due (chosen by the database: the scheduler asks
        four times a second, however many gates wait)."""
        params = {"now": now, "keep": 1 - reminder_fraction}
        return await self._sessions.query(lambda connection: [_gate(r) for r in connection.execute(_DUE, params)])

    async def consume(self, gate_id: str) -> None:
        """Note that the run has gone past this settled gate, so its decision no longer wakes the run."""
        statement = (
            update(GateRow)
            .where(GateRow.id == gate_id, GateRow.consumed_at.is_(None))
            .values(consumed_at=self._sessions.clock())
        )
        await self._sessions.execute(statement)

    async def waiting_runs_with_answers(self) -> list[str]:
        """Runs parked while one of their gates has been decided or timed out and not yet acted on."""
        return await self._sessions.query(lambda connection: list(connection.scalars(_WAITING_WITH_ANSWERS)))
