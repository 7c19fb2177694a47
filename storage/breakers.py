"""Circuit breakers in the store: one row per tool version, shared by every replica.

States: ``closed`` (calls go through), ``open`` (calls are refused until ``opened_at + open_s``), ``half_open`` (one
probe call, holding a lease, decides). Each transition is one compare-and-set statement on ``generation``, so two
replicas that see the same failures open a breaker once, and only one of them probes it. Calls are counted per
``BUCKET_S`` of time in ``breaker_calls`` (an upsert adding to the bucket), from which each replica computes the
failure rate over a tool's window.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from storage.models import BreakerCallRow, BreakerRow
from storage.records import CLOSED, HALF_OPEN, OPEN, BreakerRecord
from storage.sessions import Sessions

__all__ = ["BUCKET_S", "CLOSED", "HALF_OPEN", "KEEP_BUCKETS_S", "OPEN", "BreakerRecord", "BreakerStore"]

BUCKET_S = 5
KEEP_BUCKETS_S = 86_400
"""Counts older than this are deleted (no window is longer)."""


def _record(row: Any) -> BreakerRecord:
    return BreakerRecord(
        tool=row.tool,
        state=row.state,
        generation=row.generation,
        opened_at=row.opened_at,
        open_s=row.open_s,
        opens=row.opens,
        reason=row.reason,
        probe_owner=row.probe_owner,
        probe_expires_at=row.probe_expires_at,
        updated_at=row.updated_at,
    )


class BreakerStore:
    """``store.breakers``."""

    def __init__(self, sessions: Sessions, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    def bucket(self, at: float) -> int:
        return int(at // BUCKET_S)

    async def add_calls(self, counts: Iterable[tuple[str, int, int, int]]) -> None:
        """Add ``(tool, bucket, calls, failures)`` to the buckets' counts, in one transaction."""
        rows = [{"tool": t, "bucket": b, "calls": c, "failures": f} for t, b, c, f in counts]
        if not rows:
            return
        module = importlib.import_module(f"sqlalchemy.dialects.{self._dialect}")
        statement = module.insert(BreakerCallRow)
        statement = statement.on_conflict_do_update(
            index_elements=[BreakerCallRow.tool, BreakerCallRow.bucket],
            set_={
                "calls": BreakerCallRow.calls + statement.excluded.calls,
                "failures": BreakerCallRow.failures + statement.excluded.failures,
            },
        )
        await self._sessions.change(lambda connection: connection.execute(statement, rows))

    async def read(self, windows: dict[str, float]) -> tuple[dict[str, BreakerRecord], dict[str, tuple[int, int]]]:
        """The breakers of the tools in ``windows`` that have a row, and each tool's (calls, failures) counted
        since its own start of window (``windows[tool]``)."""
        if not windows:
            return {}, {}
        names = list(windows)
        states = select(BreakerRow).where(BreakerRow.tool.in_(names))
        counts = select(BreakerCallRow).where(
            BreakerCallRow.tool.in_(names), BreakerCallRow.bucket >= self.bucket(min(windows.values()))
        )

        def read(connection: Connection) -> tuple[dict[str, BreakerRecord], dict[str, tuple[int, int]]]:
            found = {row.tool: _record(row) for row in connection.execute(states)}
            window: dict[str, tuple[int, int]] = {}
            for row in connection.execute(counts):
                if row.bucket >= self.bucket(windows[row.tool]):
                    calls, failures = window.get(row.tool, (0, 0))
                    window[row.tool] = (calls + row.calls, failures + row.failures)
            return found, window

        return await self._sessions.query(read)

    async def all(self) -> list[BreakerRecord]:
        query = select(BreakerRow).order_by(BreakerRow.tool)
        return await self._sessions.query(lambda connection: [_record(r) for r in connection.execute(query)])

    async def trip(self, tool: str, seen: int | None, open_s: float, reason: str) -> BreakerRecord | None:
        """Open a closed breaker (``seen``: the generation read; None: it had no row). None if another replica
        changed it first."""
        now = self._sessions.clock()

        def write(connection: Connection) -> BreakerRecord | None:
            values = {"state": OPEN, "opened_at": now, "open_s": open_s, "reason": reason, "updated_at": now}
            if seen is None:  # no row yet: the insert is the compare-and-set (a replica inserting first wins)
                module = importlib.import_module(f"sqlalchemy.dialects.{self._dialect}")
                statement = (
                    module.insert(BreakerRow)
                    .values(tool=tool, generation=1, opens=1, **values)
                    .on_conflict_do_nothing(index_elements=[BreakerRow.tool])
                )
                if connection.execute(statement).rowcount != 1:
                    return None
            else:
                changed = connection.execute(
                    update(BreakerRow)
                    .where(BreakerRow.tool == tool, BreakerRow.generation == seen, BreakerRow.state == CLOSED)
                    .values(generation=seen + 1, opens=BreakerRow.opens + 1, probe_owner=None, **values)
                ).rowcount
                if changed != 1:
                    return None
            return _record(connection.execute(select(BreakerRow).where(BreakerRow.tool == tool)).one())

        return await self._sessions.change(write)

    async def take_probe(self, tool: str, owner: str, lease_s: float) -> BreakerRecord | None:
        """Take the one probe call of a breaker whose open time is over (it goes ``half_open``), unless another
        call holds an unexpired probe lease. None if this caller does not get it."""
        now = self._sessions.clock()
        statement = (
            update(BreakerRow)
            .where(
                BreakerRow.tool == tool,
                BreakerRow.state.in_([OPEN, HALF_OPEN]),
                BreakerRow.opened_at + BreakerRow.open_s <= now,
                (BreakerRow.probe_owner.is_(None)) | (BreakerRow.probe_expires_at < now),
            )
            .values(
                state=HALF_OPEN,
                generation=BreakerRow.generation + 1,
                probe_owner=owner,
                probe_expires_at=now + lease_s,
                updated_at=now,
            )
        )

        def write(connection: Connection) -> BreakerRecord | None:
            if connection.execute(statement).rowcount != 1:
                return None
            return _record(connection.execute(select(BreakerRow).where(BreakerRow.tool == tool)).one())

        return await self._sessions.change(write)

    async def settle_probe(self, tool: str, generation: int, ok: bool, max_open_s: float, reason: str) -> bool:
        """The probe's outcome: ``ok`` closes the breaker (and forgets the old counts), else it opens again for
        twice as long (up to ``max_open_s``). False if it changed meanwhile (an operator reset it)."""
        now = self._sessions.clock()

        def write(connection: Connection) -> bool:
            match = (BreakerRow.tool == tool, BreakerRow.generation == generation, BreakerRow.state == HALF_OPEN)
            if ok:
                values: dict[str, Any] = {"state": CLOSED, "opens": 0, "opened_at": None, "reason": None}
            else:
                doubled = (
                    func.min(BreakerRow.open_s * 2, max_open_s)
                    if self._dialect == "sqlite"
                    else func.least(BreakerRow.open_s * 2, max_open_s)
                )
                values = {"state": OPEN, "opened_at": now, "open_s": doubled, "opens": BreakerRow.opens + 1}
                values["reason"] = reason
            changed = connection.execute(
                update(BreakerRow)
                .where(*match)
                .values(generation=generation + 1, probe_owner=None, probe_expires_at=None, updated_at=now, **values)
            ).rowcount
            if changed == 1 and ok:
                connection.execute(delete(BreakerCallRow).where(BreakerCallRow.tool == tool))
            return bool(changed == 1)

        return await self._sessions.change(write)

    async def reset(self, tool: str) -> bool:
        """Close a breaker whatever its state (an operator's decision) and forget its counts. False if none."""
        now = self._sessions.clock()

        def write(connection: Connection) -> bool:
            changed = connection.execute(
                update(BreakerRow)
                .where(BreakerRow.tool == tool)
                .values(
                    state=CLOSED,
                    generation=BreakerRow.generation + 1,
                    opens=0,
                    opened_at=None,
                    reason=None,
                    probe_owner=None,
                    probe_expires_at=None,
                    updated_at=now,
                )
            ).rowcount
            connection.execute(delete(BreakerCallRow).where(BreakerCallRow.tool == tool))
            return bool(changed)

        return await self._sessions.change(write)

    async def prune(self) -> None:
        """Forget counts older than any window."""
        oldest = self.bucket(self._sessions.clock() - KEEP_BUCKETS_S)
        await self._sessions.change(
            lambda connection: connection.execute(delete(BreakerCallRow).where(BreakerCallRow.bucket < oldest))
        )
