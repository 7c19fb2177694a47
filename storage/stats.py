"""Tool and run statistics, computed in SQL from the step and run records (``podium stats``, ``podium://stats``).

Per tool version: calls (tool steps that finished), failures, p50/p95/p99 of their duration, and their cost; per
pattern (the kind of a run's root step, ``runs.pattern``): runs by status. One index (``ix_steps_stats``: tool,
version, duration, started_at, status, cost) serves the steps: the aggregates read it in (tool, version) order
without a sort, and each percentile is the k-th entry of its group in duration order, found by walking the index
(``OFFSET``), so nothing sorts the steps. On PostgreSQL, ``percentile_disc`` gives the percentiles in the
aggregate query itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, select

from storage.models import RunRow, StepRow
from storage.sessions import Sessions

PERCENTILES = (0.5, 0.95, 0.99)
FINISHED = ("completed", "failed")
"""The step statuses that count as calls (a skipped or still running step is not one)."""

DURATION = StepRow.finished_at - StepRow.started_at  # the expression ix_steps_stats holds


@dataclass(frozen=True, slots=True)
class ToolStats:
    tool: str
    version: str
    calls: int
    failed: int
    cost: float
    percentiles_s: tuple[float, ...]
    """The duration of a call at each of ``PERCENTILES``, in seconds (the nearest-rank value: one that occurred)."""

    @property
    def error_rate(self) -> float:
        return self.failed / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class Stats:
    since: float | None
    until: float
    tools: list[ToolStats]
    runs: dict[str, dict[str, int]]
    """Per pattern (``chain``, ``fan_out``, ...), the runs created in the window by status."""


def nearest_rank(fraction: float, count: int) -> int:
    """The 0-based rank of the ``fraction`` percentile among ``count`` sorted values (nearest-rank method)."""
    return max(0, math.ceil(fraction * count) - 1)


class StatsStore:
    """``store.stats``."""

    def __init__(self, sessions: Sessions, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    async def read(self, since: float | None = None, tool: str | None = None) -> Stats:
        """The statistics of the tool steps started at or after ``since`` (all of them if None) and of the runs
        created since; ``tool``: that tool's versions only."""
        until = self._sessions.clock()

        def read(connection: Connection) -> Stats:
            tools = self._tools(connection, since, tool)
            return Stats(since=since, until=until, tools=tools, runs=self._runs(connection, since))

        return await self._sessions.query(read)

    def _where(self, since: float | None, tool: str | None) -> list[Any]:
        # a finished step has its finished_at; the index holds every column these read (a covering scan)
        where: list[ColumnElement[bool]] = [StepRow.tool.is_not(None), StepRow.status.in_(FINISHED)]
        if since is not None:
            where.append(StepRow.started_at >= since)
        if tool is not None:
            where.append(StepRow.tool == tool)
        return where

    def _tools(self, connection: Connection, since: float | None, tool: str | None) -> list[ToolStats]:
        where = self._where(since, tool)
        columns: list[Any] = [
            StepRow.tool,
            StepRow.version,
            func.count(),
            func.sum(case((StepRow.status == "failed", 1), else_=0)),
            func.sum(StepRow.cost),
        ]
        postgres = self._dialect == "postgresql"
        if postgres:
            columns += [func.percentile_disc(p).within_group(DURATION) for p in PERCENTILES]
        query = select(*columns).where(and_(*where)).group_by(StepRow.tool, StepRow.version)
        found = []
        for row in connection.execute(query.order_by(StepRow.tool, StepRow.version)):
            calls = int(row[2])
            if postgres:
                percentiles = tuple(float(value) for value in row[5:])
            else:
                percentiles = self._percentiles(connection, since, row[0], row[1], calls)
            found.append(ToolStats(row[0], row[1] or "", calls, int(row[3] or 0), float(row[4] or 0.0), percentiles))
        return found

    def _percentiles(
        self, connection: Connection, since: float | None, tool: str, version: str | None, calls: int
    ) -> tuple[float, ...]:
        """Each percentile as the k-th duration of the group, walking ``ix_steps_stats`` in order (SQLite): from the
        shorter end, so a p99 walks 1% of the group's entries, not 99%."""
        same = StepRow.version == version if version is not None else StepRow.version.is_(None)
        query = select(DURATION).where(and_(*self._where(since, tool), same)).limit(1)
        up = query.order_by(StepRow.tool, StepRow.version, DURATION)
        down = query.order_by(StepRow.tool.desc(), StepRow.version.desc(), DURATION.desc())
        values = []
        for fraction in PERCENTILES:
            rank = nearest_rank(fraction, calls)
            walk = up.offset(rank) if rank < calls / 2 else down.offset(calls - 1 - rank)
            values.append(float(connection.execute(walk).scalar() or 0.0))
        return tuple(values)

    def _runs(self, connection: Connection, since: float | None) -> dict[str, dict[str, int]]:
        pattern = func.coalesce(RunRow.pattern, "unknown")  # a run created before patterns were recorded
        query = select(pattern, RunRow.status, func.count())
        if since is not None:
            query = query.where(RunRow.created_at >= since)
        runs: dict[str, dict[str, int]] = {}
        for kind, status, count in connection.execute(query.group_by(pattern, RunRow.status)):
            runs.setdefault(kind, {})[status] = int(count)
        return runs
