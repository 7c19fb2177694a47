"""The budget ledger: runs started under a run by someone other than its own steps draw their budget from it.

A run an MCP client starts with ``parent_run_id`` executes wherever the request lands (any replica, any time:
its parent may be running elsewhere, parked at a gate, or finished), so its spending cannot be counted in the
memory of the engine executing the parent. It is counted here instead, by escrow:

- **draw** (with the child's insert, in one transaction): the child's grant is the least of what it asks and the
  room of each run it draws from, where room is ``max_steps - usage_steps - held_steps`` (and likewise for cost).
  It draws from its parent and on up the run tree, stopping after the first run that holds an open grant itself
  (that grant already stands for everything below it in the runs above). Each of those runs' ``held_*`` grows by
  the grant. The rows are locked (PostgreSQL ``FOR UPDATE``, child to root; SQLite's one writer), so two children
  racing for the last units cannot both get them: the second finds no room and is refused.
- **settle** (once the child has ended): what it did not use of its grant (``grant - usage - held``: what its own
  children hold stays held) goes back to the runs it drew from, and, through any of those that has itself settled
  since, to the runs that one drew from. Idempotent (``hold_state`` goes ``open`` -> ``closed`` in the same
  transaction), and swept by every engine's scheduler, so a crash between a child's end and its settling loses
  nothing.

An engine executing a run keeps that run's ``held_*`` in memory (read at launch, refreshed at each heartbeat) and
counts them against its limits beside what it spends itself; a child it starts itself updates them at once.
Delegation steps do not use the ledger: their children are counted step by step in the parent's memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from storage.errors import NoBudget, RunNotFound
from storage.grants import ENDED, Draw, Grant, share_of_cost, share_of_steps
from storage.models import RunRow
from storage.records import dumps, loads
from storage.sessions import Sessions

__all__ = ["ENDED", "Draw", "Grant", "LedgerStore", "share_of_cost", "share_of_steps"]

_COLUMNS = (
    RunRow.id,
    RunRow.status,
    RunRow.parent_run_id,
    RunRow.limits,
    RunRow.usage_steps,
    RunRow.usage_cost,
    RunRow.held_steps,
    RunRow.held_cost,
    RunRow.hold_steps,
    RunRow.hold_cost,
    RunRow.hold_from,
    RunRow.hold_state,
)


def _row(connection: Connection, run_id: str, lock: bool) -> Any:
    query = select(*_COLUMNS).where(RunRow.id == run_id)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise RunNotFound(run_id)
    return row


def _limit(row: Any, which: str) -> float | None:
    """A run's own limit: its grant if it drew one, else its ``limits``."""
    if row.hold_state is not None:
        value = row.hold_steps if which == "steps" else row.hold_cost
    else:
        value = loads(row.limits).get("max_steps" if which == "steps" else "max_cost_per_run")
    return None if value is None else float(value)


def _take(
    connection: Connection,
    rows: Sequence[Any],
    fresh: Mapping[str, tuple[int, float]],
    steps: tuple[int, int],
    cost: tuple[float, float | None],
) -> tuple[int, float | None]:
    """Add a grant to ``rows``' ``held_*``: at least ``steps[0]`` and at most ``steps[1]`` steps (and likewise for
    cost; None: no limit of the asker's), a share of the least room among them. Rows of runs that have settled their
    own grant pass the units through to their sources (which are among ``rows``), so their room is not theirs."""
    need_steps, most_steps = steps
    need_cost, most_cost = cost
    room_steps: int | None = None
    room_cost: float | None = None
    for row in rows:
        if row.hold_state == "closed":
            continue
        used_steps, used_cost = fresh.get(row.id, (row.usage_steps, row.usage_cost))
        max_steps = int(_limit(row, "steps") or 0)
        room = max_steps - used_steps - row.held_steps
        if room < need_steps:
            raise NoBudget(row.id, "max_steps", max_steps, used_steps, row.held_steps)
        room_steps = room if room_steps is None else min(room_steps, room)
        max_cost = _limit(row, "cost")
        if max_cost is not None:
            left = max(0.0, float(max_cost) - used_cost - row.held_cost)
            if left + 1e-12 < need_cost:
                raise NoBudget(row.id, "max_cost_per_run", max_cost, used_steps, row.held_steps)
            room_cost = left if room_cost is None else min(room_cost, left)
    granted_steps = most_steps if room_steps is None else share_of_steps(room_steps, need_steps, most_steps)
    granted_cost = most_cost if room_cost is None else share_of_cost(room_cost, need_cost, most_cost)
    for row in rows:
        connection.execute(
            update(RunRow)
            .where(RunRow.id == row.id)
            .values(
                held_steps=RunRow.held_steps + granted_steps,
                held_cost=RunRow.held_cost + (granted_cost or 0.0),
            )
        )
    return granted_steps, granted_cost


def draw(connection: Connection, lock: bool, ask: Draw) -> Grant:
    """Take a child's first grant from its parent and the runs above it, inside the caller's transaction. Raises
    ``NoBudget`` naming the first run with no step left (the caller's transaction then changes nothing)."""
    rows = []
    run_id: str | None = ask.parent_id
    while run_id is not None:
        row = _row(connection, run_id, lock)
        rows.append(row)
        if row.hold_state == "open":  # its grant holds for all of it in the runs above
            break
        run_id = row.parent_run_id
    steps, cost = _take(connection, rows, ask.fresh, (1, ask.steps), (0.0, ask.cost))
    return Grant(steps, cost, tuple(row.id for row in rows))


def _sources(connection: Connection, lock: bool, sources: Sequence[str]) -> list[Any]:
    """``sources`` and, through any of them that has settled its own grant, the runs it drew from."""
    seen: set[str] = set()
    rows = []
    pending = list(sources)
    while pending:
        run_id = pending.pop(0)
        if run_id in seen:
            continue
        seen.add(run_id)
        try:
            row = _row(connection, run_id, lock)
        except RunNotFound:
            continue  # deleted since
        rows.append(row)
        if row.hold_state == "closed":
            pending.extend(loads(row.hold_from) or [])
    return rows


def top_up(
    connection: Connection,
    lock: bool,
    run_id: str,
    need: tuple[int, float],
    most: tuple[int, float | None],
    fresh: Mapping[str, tuple[int, float]],
) -> tuple[int, float | None]:
    """Grow an open grant by at least ``need`` (steps, cost), up to what the run may use at most (``most``, its own
    limits); returns the run's grant after it. Raises ``NoBudget`` if a run it draws from has too little left."""
    row = _row(connection, run_id, lock)
    if row.hold_state != "open":
        raise NoBudget(run_id, "max_steps", row.hold_steps, row.usage_steps, row.held_steps)
    more_cost_most = None if most[1] is None else max(0.0, most[1] - (row.hold_cost or 0.0))
    steps, cost = _take(
        connection,
        _sources(connection, lock, loads(row.hold_from) or []),
        fresh,
        (need[0], max(need[0], most[0] - row.hold_steps)),
        (need[1], more_cost_most),
    )
    hold_steps = row.hold_steps + steps
    hold_cost = row.hold_cost if cost is None else (row.hold_cost or 0.0) + cost
    connection.execute(update(RunRow).where(RunRow.id == run_id).values(hold_steps=hold_steps, hold_cost=hold_cost))
    return hold_steps, hold_cost


def _give_back(connection: Connection, lock: bool, sources: Sequence[str], steps: int, cost: float) -> None:
    """Return ``steps`` and ``cost`` to ``sources`` and, through any of them that has settled, to its sources."""
    for row in _sources(connection, lock, sources):
        connection.execute(
            update(RunRow)
            .where(RunRow.id == row.id)
            .values(held_steps=RunRow.held_steps - steps, held_cost=RunRow.held_cost - cost)
        )


def _settle(connection: Connection, lock: bool, run_id: str) -> bool:
    row = _row(connection, run_id, lock)
    if row.hold_state != "open" or row.status not in ENDED:
        return False
    unused_steps = (row.hold_steps or 0) - row.usage_steps - row.held_steps
    unused_cost = (row.hold_cost or 0.0) - row.usage_cost - row.held_cost
    _give_back(connection, lock, loads(row.hold_from) or [], unused_steps, unused_cost)
    connection.execute(update(RunRow).where(RunRow.id == run_id).values(hold_state="closed"))
    return True


def reopen(connection: Connection, lock: bool, run_id: str) -> None:
    """Undo a settled grant's return (an operator retries an ended run): it holds its whole grant again."""
    row = _row(connection, run_id, lock)
    if row.hold_state != "closed":
        return
    unused_steps = (row.hold_steps or 0) - row.usage_steps - row.held_steps
    unused_cost = (row.hold_cost or 0.0) - row.usage_cost - row.held_cost
    _give_back(connection, lock, loads(row.hold_from) or [], -unused_steps, -unused_cost)
    connection.execute(update(RunRow).where(RunRow.id == run_id).values(hold_state="open"))


def grant_columns(grant: Grant) -> dict[str, Any]:
    """The child row's ledger columns for ``grant``."""
    return {
        "hold_steps": grant.steps,
        "hold_cost": grant.cost,
        "hold_from": dumps(list(grant.sources)),
        "hold_state": "open",
    }


class LedgerStore:
    """``store.ledger``: settle ended children's grants, and read what runs' children hold."""

    def __init__(self, sessions: Sessions, dialect: str) -> None:
        self._sessions = sessions
        self._lock = dialect == "postgresql"

    async def top_up(
        self,
        run_id: str,
        need: tuple[int, float],
        most: tuple[int, float | None],
        fresh: Mapping[str, tuple[int, float]],
    ) -> tuple[int, float | None]:
        """Grow a run's open grant (see ``top_up``); returns its grant after it (steps, cost)."""
        return await self._sessions.change(lambda connection: top_up(connection, self._lock, run_id, need, most, fresh))

    async def settle(self, run_id: str) -> bool:
        """Give back what an ended run did not use of its grant; False if it has none open (or has not ended)."""
        return await self._sessions.change(lambda connection: _settle(connection, self._lock, run_id))

    async def settle_ended(self, limit: int = 100) -> list[str]:
        """Settle the grants of runs that ended without their engine settling them (cancelled from another
        process, or a crash in between). Returns their ids."""
        query = (
            select(RunRow.id)
            .where(RunRow.hold_state == "open", RunRow.status.in_(ENDED))
            .order_by(RunRow.id)
            .limit(limit)
        )
        ended = await self._sessions.query(lambda connection: list(connection.scalars(query)))
        return [run_id for run_id in ended if await self.settle(run_id)]

    async def held(self, run_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
        """What the children of each run in ``run_ids`` hold of its budget (steps, cost)."""
        if not run_ids:
            return {}
        query = select(RunRow.id, RunRow.held_steps, RunRow.held_cost).where(RunRow.id.in_(list(run_ids)))
        rows = await self._sessions.query(lambda connection: connection.execute(query).all())
        return {row.id: (row.held_steps, row.held_cost) for row in rows}
