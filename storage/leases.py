"""Run leases: which engine executes a run, until when. Every transition is one compare-and-set statement, so
engines sharing a database never both execute a run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import aliased

from storage.models import RunRow
from storage.records import DELEGATION_KEY_PREFIX
from storage.sessions import Sessions

__all__ = ["DELEGATED", "DELEGATION_KEY_PREFIX", "LeaseStore"]

DELEGATED = DELEGATION_KEY_PREFIX + "%"


class LeaseStore:
    """``store.leases``: claim, renew, extend and release the leases of runs."""

    def __init__(self, sessions: Sessions, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    def _free(self, now: float) -> Any:
        return or_(RunRow.lease_expires_at.is_(None), RunRow.lease_expires_at < now)

    async def _changed_one(self, statement: Any) -> bool:
        return await self._sessions.change(lambda connection: connection.execute(statement).rowcount == 1)

    async def claim(self, run_id: str, owner: str, lease_s: float) -> bool:
        """Take the lease of a running run whose lease expired (or is already ``owner``'s). One claimer wins."""
        now = self._sessions.clock()
        return await self._changed_one(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.status == "running", or_(self._free(now), RunRow.lease_owner == owner))
            .values(lease_owner=owner, lease_expires_at=now + lease_s, updated_at=now)
        )

    async def claim_waiting(self, run_id: str, owner: str = "", lease_s: float = 15.0) -> bool:
        """Move a run from ``waiting`` to ``running`` under ``owner``'s lease if nobody else has: the winner
        resumes it. Its deadline becomes now plus the execution time it had left when it parked."""
        now = self._sessions.clock()
        return await self._changed_one(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.status == "waiting")
            .values(
                status="running",
                lease_owner=owner or None,
                lease_expires_at=now + lease_s,
                deadline_at=func.coalesce(now + RunRow.time_left_s, RunRow.deadline_at),
                time_left_s=None,
                updated_at=now,
            )
        )

    async def claim_expired(self, owner: str, lease_s: float, limit: int = 50) -> list[str]:
        """Claim running runs whose owner stopped renewing their lease (it crashed or was killed). Not the child
        of a delegation step while its parent is running: the parent's engine resumes it when the step re-attaches,
        so that a run tree executes in one engine and counts its budget there."""
        now = self._sessions.clock()
        parent = aliased(RunRow)
        delegated_under_running = exists().where(
            parent.id == RunRow.parent_run_id, parent.status == "running", RunRow.idempotency_key.like(DELEGATED)
        )
        expired = (
            select(RunRow.id).where(RunRow.status == "running", self._free(now), ~delegated_under_running).limit(limit)
        )
        if self._dialect == "postgresql":
            expired = expired.with_for_update(skip_locked=True)  # replicas claiming at once take different runs
        # One statement: on SQLite a read followed by a write in one transaction fails at once (not after the busy
        # timeout) if another connection committed in between; a single UPDATE takes the write lock first.
        statement = (
            update(RunRow)
            .where(RunRow.id.in_(expired.scalar_subquery()), RunRow.status == "running", self._free(now))
            .values(lease_owner=owner, lease_expires_at=now + lease_s, updated_at=now)
            .returning(RunRow.id)
        )
        return await self._sessions.change(lambda connection: sorted(connection.scalars(statement)))

    async def renew(self, owner: str, run_ids: Sequence[str], lease_s: float) -> set[str]:
        """Heartbeat: extend the leases ``owner`` holds on ``run_ids``. Returns the ids whose lease ``owner`` still
        held; any other was taken over by another engine (this one stalled longer than its lease)."""
        if not run_ids:
            return set()
        statement = (
            update(RunRow)
            .where(RunRow.id.in_(list(run_ids)), RunRow.lease_owner == owner)
            .values(lease_expires_at=self._sessions.clock() + lease_s)
            .returning(RunRow.id)
        )
        return await self._sessions.change(lambda connection: set(connection.scalars(statement)))

    async def extend(self, run_id: str, owner: str, lease_s: float) -> bool:
        """Extend ``owner``'s lease on a running run; False if it no longer holds it (nothing is changed then)."""
        return await self._changed_one(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.lease_owner == owner, RunRow.status == "running")
            .values(lease_expires_at=self._sessions.clock() + lease_s)
        )

    async def release(self, owner: str, run_ids: Sequence[str]) -> None:
        """Give up leases (at shutdown) so that another replica resumes those runs at once."""
        if not run_ids:
            return
        statement = (
            update(RunRow)
            .where(RunRow.id.in_(list(run_ids)), RunRow.lease_owner == owner, RunRow.status == "running")
            .values(lease_expires_at=0.0)
        )
        await self._sessions.execute(statement)
