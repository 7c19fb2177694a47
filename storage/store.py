"""The store: the only code that opens database sessions. It returns plain records, never ORM rows."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
from sqlalchemy import Connection, Engine, Select, Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import driver_sql, ledger, migrate
from storage.breakers import BreakerStore
from storage.checkpoints import Checkpointer
from storage.database import (
    Database,
    Durability,
    create_sqlite_change_engine,
    create_sqlite_reader_engine,
    create_sqlite_writer_engine,
    create_store_engine,
    parse_database_url,
)
from storage.errors import Duplicate, RunChanged, RunNotFound
from storage.events import EventStore, TriggerStore
from storage.gates import GateStore
from storage.leases import LeaseStore
from storage.ledger import Draw, LedgerStore
from storage.models import RunRow, StepRow, WorkflowRow
from storage.records import NewRun, RunInsert, RunRecord, RunUpdate, StepRecord, StepWrite, dumps, loads
from storage.sessions import Sessions, translated
from storage.stats import StatsStore
from storage.tools import ServerStore, ToolStore
from storage.writer import AsyncWriter, StepWriter, ThreadedWriter


def _run(row: Any) -> RunRecord:
    """A run record from a ``RunRow`` or a row of its columns."""
    return RunRecord(
        id=row.id,
        status=row.status,
        step=loads(row.step),
        input=loads(row.input),
        output=loads(row.output),
        error=loads(row.error),
        missing=loads(row.missing),
        lock=loads(row.lock),
        limits=loads(row.limits),
        tags=loads(row.tags),
        usage_steps=row.usage_steps,
        usage_cost=row.usage_cost,
        idempotency_key=row.idempotency_key,
        parent_run_id=row.parent_run_id,
        principal=row.principal,
        trace_id=row.trace_id,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        deadline_at=row.deadline_at,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        history=loads(row.history),
        held_steps=row.held_steps,
        held_cost=row.held_cost,
        hold_state=row.hold_state,
        hold_steps=row.hold_steps,
        hold_cost=row.hold_cost,
        span_id=row.span_id,
    )


STEP_PARTITION = 500
PICK_ON_LOOP = 256  # Store.step_overview: statuses known, a run of at most this many steps is picked on the loop
SQLITE_READERS = 4  # threads (and connections) serving reads of a SQLite store at once
_RUNS: Table = RunRow.__table__  # type: ignore[assignment]
_INSERT_RUN = _RUNS.insert()
_SUMMARY_COLUMNS = (
    StepRow.run_id,
    StepRow.path,
    StepRow.kind,
    StepRow.tool,
    StepRow.version,
    StepRow.status,
    StepRow.error,
    StepRow.missing,
    StepRow.attempts,
    StepRow.cost,
    StepRow.started_at,
    StepRow.finished_at,
)
_RUN_BY_ID: Select[Any] = select(RunRow).where(RunRow.id == bindparam("id"))
_NEW_RUN_COLUMNS = (
    "id", "status", "step", "input", "output", "error", "missing", "lock", "limits", "tags", "usage_steps",
    "usage_cost", "idempotency_key", "parent_run_id", "principal", "trace_id", "pattern", "span_id", "lease_owner",
    "lease_expires_at", "deadline_at", "history", "created_at", "started_at", "finished_at", "updated_at",
    "held_steps", "held_cost", "hold_state", "hold_steps", "hold_cost",
)  # fmt: skip
_INSERT_NEW_RUN = _RUNS.insert().values({name: bindparam(name) for name in _NEW_RUN_COLUMNS})
_STATUSES = select(StepRow.path, StepRow.status).where(StepRow.run_id == bindparam("run_id"))
_SUMMARIES = select(*_SUMMARY_COLUMNS).where(StepRow.run_id == bindparam("run_id"))  # + AND path IN (...)
_CHILDREN = select(RunRow).where(RunRow.parent_run_id == bindparam("run_id")).order_by(RunRow.created_at, RunRow.id)


def _new_run_insert(dialect: str) -> Any:
    """The insert of ``Store._new_row``'s columns (the others keep their defaults)."""
    return _INSERT_NEW_RUN


def _run_by_id(dialect: str) -> Any:
    return _RUN_BY_ID


def _statuses(dialect: str) -> Any:
    return _STATUSES


def _summaries(dialect: str) -> Any:
    return _SUMMARIES


def _children(dialect: str) -> Any:
    return _CHILDREN


def _overview_on_sqlite(
    connection: Connection,
    run_id: str,
    pick: Callable[[list[tuple[str, str]]], list[str]],
    children: int,
    statuses: list[tuple[str, str]] | None,
) -> tuple[list[tuple[str, str]], list[StepRecord], list[RunRecord]]:
    """``Store.step_overview``'s read as driver SQL compiled once: building and executing three SQLAlchemy
    statements per call was most of the cost of every answer that shows a run."""
    ids = {"run_id": run_id}
    pairs = statuses
    if pairs is None:
        pairs = [(row.path, row.status) for row in driver_sql.rows(connection, "step statuses", _statuses, ids)]
    chosen = pick(pairs)
    found: dict[str, StepRecord] = {}
    for start in range(0, len(chosen), STEP_PARTITION):
        some = chosen[start : start + STEP_PARTITION]
        tail = f" AND steps.path IN ({', '.join('?' * len(some))})"
        for row in driver_sql.rows(connection, "step summaries", _summaries, ids, tail, some):
            found[row.path] = _step(row, payloads=False)
    kids = []
    if children > 0:
        kids = [_run(row) for row in driver_sql.rows(connection, "child runs", _children, ids, " LIMIT ?", [children])]
    return pairs, [found[path] for path in chosen if path in found], kids


def _maybe_run(row: Any) -> RunRecord | None:
    return None if row is None else _run(row)


def _step(row: Any, payloads: bool = True) -> StepRecord:
    """A step record from a row; without ``payloads`` (a row of ``_SUMMARY_COLUMNS``) no input or output."""
    return StepRecord(
        run_id=row.run_id,
        path=row.path,
        kind=row.kind,
        tool=row.tool,
        version=row.version,
        status=row.status,
        input=loads(row.input) if payloads else None,
        output=loads(row.output) if payloads else None,
        output_json=row.output if payloads else None,
        error=loads(row.error),
        missing=loads(row.missing),
        attempts=loads(row.attempts),
        cost=row.cost,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class Store:
    """Runs and their step records, with ``tools``, ``leases`` and ``gates`` beside them. Open it with
    ``async with Store.open(url) as store``.

    Reads and rare writes go through an async session. Step records and run state changes on the engine's
    hot path go through ``submit_*`` into the group-commit writer and become durable at ``flush``. Whatever the
    database or its driver raises arrives as a ``StorageError`` (see ``storage.sessions``).
    """

    def __init__(
        self,
        db: Database,
        engine: AsyncEngine,
        writer: StepWriter,
        durability: Durability,
        clock: Callable[[], float],
        readers: Engine | None = None,
        writers: Engine | None = None,
        write_lock: threading.Lock | None = None,
    ) -> None:
        self.db = db
        self.durability = durability
        self._engine = engine
        self._sessions = Sessions(engine, clock, readers, SQLITE_READERS, writers, write_lock)
        self._writer = writer
        self.tools = ToolStore(self._sessions)
        self.workflows = ToolStore(self._sessions, WorkflowRow)
        self.servers = ServerStore(self._sessions)
        self.breakers = BreakerStore(self._sessions, db.dialect)
        self.events = EventStore(self._sessions, db.dialect, writer)
        self.triggers = TriggerStore(self._sessions)
        self.stats = StatsStore(self._sessions, db.dialect)
        self.leases = LeaseStore(self._sessions, db.dialect)
        self.gates = GateStore(self._sessions)
        self.ledger = LedgerStore(self._sessions, db.dialect)
        self._lock_rows = db.dialect == "postgresql"

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        durability: Durability = "normal",
        clock: Callable[[], float] = time.time,
    ) -> AsyncIterator[Store]:
        """Open (creating and upgrading it if needed) the database at ``url``.

        Args:
            url: ``sqlite:///FILE``, a bare file path, or ``postgresql+asyncpg://...``.
            durability: SQLite's ``synchronous`` level: ``normal`` survives a process crash, ``full`` a power loss.
            clock: the time source for timestamps.
        """
        db = parse_database_url(url)
        async with translated():  # an unreachable or unwritable database: one line, not a driver's traceback
            await migrate.upgrade(db)
        engine = create_store_engine(db, durability)
        try:
            if db.dialect == "sqlite":
                assert db.path is not None
                checkpointer = Checkpointer(db.path)
                write_lock = threading.Lock()  # the writer's thread and ``Sessions.change`` take turns
                writer: StepWriter = ThreadedWriter(
                    create_sqlite_writer_engine(db, durability), clock, wrote=checkpointer.wrote, lock=write_lock
                )
                readers = create_sqlite_reader_engine(db, durability, SQLITE_READERS)
                writers = create_sqlite_change_engine(db, durability)
                try:
                    store = cls(db, engine, writer, durability, clock, readers, writers, write_lock)
                    try:
                        yield store
                    finally:
                        store._sessions.close()  # on the loop, like the connection it closes
                finally:
                    with anyio.CancelScope(shield=True):  # release the thread and its connection even when cancelled
                        await writer.aclose()
                        readers.dispose()
                        writers.dispose()
                        await anyio.to_thread.run_sync(checkpointer.close)
            else:
                async_writer = AsyncWriter(engine, clock)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(async_writer.run)
                    try:
                        yield cls(db, engine, async_writer, durability, clock)
                    finally:
                        with anyio.CancelScope(shield=True):
                            await async_writer.aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await engine.dispose()

    def now(self) -> float:
        return self._sessions.clock()

    # -- runs ------------------------------------------------------------------------------------------------

    def submit_new_run(self, new: NewRun) -> RunRecord:
        """Queue a run's insert for the writer, ahead of the records submitted after it; durable after the next
        ``flush``. For a run no one else can have created (no idempotency key a caller chose): the engine's
        delegation steps, whose child runs it starts without waiting on the database."""
        row = self._new_row(new)
        self._writer.submit(RunInsert(new.id, row))
        return _run(SimpleNamespace(**row))

    def _new_row(self, new: NewRun) -> dict[str, Any]:
        now = self._sessions.clock()
        return {
            "id": new.id,
            "status": new.status,
            "step": dumps(new.step),
            "input": dumps(new.input),
            "output": None,
            "error": None,
            "missing": "[]",
            "lock": dumps(new.lock),
            "limits": dumps(new.limits),
            "tags": dumps(new.tags),
            "usage_steps": 0,
            "usage_cost": 0.0,
            "idempotency_key": new.idempotency_key,
            "parent_run_id": new.parent_run_id,
            "principal": new.principal,
            "trace_id": new.trace_id,
            "pattern": new.pattern,
            "span_id": new.span_id,
            "lease_owner": new.lease_owner,
            "lease_expires_at": new.lease_expires_at,
            "deadline_at": new.deadline_at,
            "history": "[]",
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "updated_at": now,
            "held_steps": 0,
            "held_cost": 0.0,
            "hold_state": None,
            "hold_steps": None,
            "hold_cost": None,
        }

    async def create_run(self, new: NewRun, ask: Draw | None = None) -> tuple[RunRecord, bool]:
        """Insert a run. With an idempotency key already used, return that run instead (``created`` False).

        With ``ask``, the run draws a first grant of budget from the ledger in the same transaction
        (``storage.ledger``): ``hold_steps`` and ``hold_cost``. Raises ``NoBudget`` if nothing is left."""
        row = self._new_row(new)

        def insert(connection: Connection) -> None:
            if ask is not None:
                row.update(ledger.grant_columns(ledger.draw(connection, self._lock_rows, ask)))
                connection.execute(_INSERT_RUN, row)
            else:
                driver_sql.execute(connection, "new run", _new_run_insert, row)

        try:
            await self._sessions.change(insert)
            return _run(SimpleNamespace(**row)), True
        except Duplicate:
            if new.idempotency_key is None:
                raise
            existing = await self.find_run_by_key(new.idempotency_key)
            if existing is None:
                raise
            return existing, False

    async def find_run_by_key(self, idempotency_key: str) -> RunRecord | None:
        query = select(RunRow).where(RunRow.idempotency_key == idempotency_key)
        return await self._sessions.query(lambda connection: _maybe_run(connection.execute(query).first()))

    async def get_run(self, run_id: str) -> RunRecord:
        def read(connection: Connection) -> RunRecord | None:
            return _maybe_run(driver_sql.first(connection, "run", _run_by_id, {"id": run_id}))

        found = await self._sessions.query(read)
        if found is None:
            raise RunNotFound(run_id)
        return found

    async def list_runs(
        self, status: str | Sequence[str] | None = None, limit: int = 20, parent_run_id: str | None = None
    ) -> list[RunRecord]:
        """Newest first; with ``parent_run_id``, only that run's children."""
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)
        if isinstance(status, str):
            query = query.where(RunRow.status == status)
        elif status is not None:
            query = query.where(RunRow.status.in_(list(status)))
        if parent_run_id is not None:
            query = query.where(RunRow.parent_run_id == parent_run_id)
        return await self._runs(query)

    async def _runs(self, query: Select[RunRow]) -> list[RunRecord]:
        return await self._sessions.query(lambda connection: [_run(r) for r in connection.execute(query)])

    async def cancelled_among(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """Those of ``run_ids`` that are recorded ``cancelled`` (by this process or another), or whose parent run
        is."""
        if not run_ids:
            return []
        cancelled_parents = select(RunRow.id).where(RunRow.status == "cancelled").scalar_subquery()
        query = select(RunRow).where(
            RunRow.id.in_(list(run_ids)),
            or_(RunRow.status == "cancelled", RunRow.parent_run_id.in_(cancelled_parents)),
        )
        return await self._runs(query)

    async def child_runs(self, run_id: str, statuses: Sequence[str] | None = None) -> list[RunRecord]:
        """The runs started with ``parent_run_id`` = ``run_id`` (in those ``statuses``), oldest first."""
        query = select(RunRow).where(RunRow.parent_run_id == run_id).order_by(RunRow.created_at, RunRow.id)
        if statuses is not None:
            query = query.where(RunRow.status.in_(list(statuses)))
        return await self._runs(query)

    async def reopen_run(
        self, seen: RunRecord, entry: dict[str, Any], steps: Sequence[StepWrite], deadline_at: float | None
    ) -> RunRecord:
        """Put a stopped run back to ``running`` with no lease, so that the next engine to look resumes it.

        In one transaction: rewrite the step records ``steps``, clear the run's outcome, give it ``deadline_at``
        and append ``entry`` (who did what, and why) to its history. A compare-and-set on the run as ``seen``:
        if anyone changed it since, nothing is written and ``RunChanged`` is raised.
        """
        now = self._sessions.clock()
        history = [*seen.history, {"at": now, **entry}]
        statement = (
            update(RunRow)
            .where(RunRow.id == seen.id, RunRow.status == seen.status, RunRow.updated_at == seen.updated_at)
            .values(
                status="running",
                output=None,
                error=None,
                missing="[]",
                finished_at=None,
                lease_owner=None,
                lease_expires_at=None,
                deadline_at=deadline_at,
                history=dumps(history),
                updated_at=now,
            )
        )
        lock = self._lock_rows

        def reopen(connection: Connection) -> None:
            if connection.execute(statement).rowcount != 1:
                current = connection.execute(select(RunRow.status).where(RunRow.id == seen.id)).scalar()
                raise RunChanged(seen.id, current if current is not None else "deleted")
            for write in steps:
                values = write.row()
                connection.execute(
                    update(StepRow).where(StepRow.run_id == write.run_id, StepRow.path == write.path).values(values)
                )
            if seen.hold_state == "closed":  # it holds its whole grant again while it runs
                ledger.reopen(connection, lock, seen.id)

        await self._sessions.change(reopen)
        return await self.get_run(seen.id)

    async def append_history(self, run_id: str, entry: dict[str, Any], *, once: bool = False) -> None:
        """Record an operator's action on a run (who, what, why) without changing anything else. With ``once``,
        not if the history already holds an entry of the same action."""
        while True:  # compare-and-set on the history read, so that concurrent appends all land
            seen = (await self.get_run(run_id)).history
            if once and any(e.get("action") == entry.get("action") for e in seen):
                return
            statement = (
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.history == dumps(seen))
                .values(history=dumps([*seen, {"at": self._sessions.clock(), **entry}]))
            )
            if await self._sessions.execute(statement) == 1:
                return

    async def cancel_open_steps(self, run_id: str, error: dict[str, Any]) -> None:
        """Record ``cancelled`` on the steps of a run left ``started`` by an engine that no longer executes it."""
        statement = (
            update(StepRow)
            .where(StepRow.run_id == run_id, StepRow.status == "started")
            .values(status="cancelled", error=dumps(error), finished_at=self._sessions.clock())
        )
        await self._sessions.execute(statement)

    async def get_steps(self, run_id: str, *, payloads: bool = True) -> list[StepRecord]:
        """Every step record of a run, in the order the steps started.

        With ``payloads=False`` the records carry no input or output (``None``): what a listing of the steps
        needs, without reading and decoding every payload the run stored.
        """
        columns = (*_SUMMARY_COLUMNS, StepRow.input, StepRow.output) if payloads else _SUMMARY_COLUMNS
        query = select(*columns).where(StepRow.run_id == run_id).order_by(StepRow.started_at)
        if not payloads:  # small rows, read at once
            return await self._sessions.query(
                lambda session: [_step(r, payloads=False) for r in session.execute(query)]
            )
        found: list[StepRecord] = []
        async with self._sessions.read() as session:
            # a run may have thousands of records with their payloads: read and decode them a partition at a time,
            # giving the event loop back in between, so that recovering a large run does not hold the server
            result = await session.stream(query.execution_options(yield_per=STEP_PARTITION))
            async for partition in result.partitions():
                found.extend(_step(row) for row in partition)
        return found

    async def step_overview(
        self,
        run_id: str,
        pick: Callable[[list[tuple[str, str]]], list[str]],
        children: int = 0,
        statuses: list[tuple[str, str]] | None = None,
    ) -> tuple[list[tuple[str, str]], list[StepRecord], list[RunRecord]]:
        """``(path, status)`` of every step record of a run, the records (without payloads) of the paths that
        ``pick`` chooses from those pairs, in its order, and its first ``children`` child runs, in one read.
        ``pick`` runs where the read runs (on SQLite, a worker thread).

        ``statuses``: the pairs, known already (the engine that settled the run kept them): the read is then only
        of what is picked, and none at all when a run of at most ``PICK_ON_LOOP`` steps has nothing picked and no
        children are asked for."""
        if statuses is not None and len(statuses) <= PICK_ON_LOOP:
            chosen = pick(statuses)
            if not chosen and children == 0:
                return statuses, [], []
            pick = lambda _pairs: chosen  # noqa: E731 -- picked already: not again in the thread
        kids = (
            select(RunRow).where(RunRow.parent_run_id == run_id).order_by(RunRow.created_at, RunRow.id).limit(children)
        )

        def read(connection: Connection) -> tuple[list[tuple[str, str]], list[StepRecord], list[RunRecord]]:
            if connection.dialect.paramstyle == "qmark":
                return _overview_on_sqlite(connection, run_id, pick, children, statuses)
            pairs = statuses
            if pairs is None:
                found_pairs = connection.execute(select(StepRow.path, StepRow.status).where(StepRow.run_id == run_id))
                pairs = [(path, status) for path, status in found_pairs]
            chosen = pick(pairs)
            found: dict[str, StepRecord] = {}
            for start in range(0, len(chosen), STEP_PARTITION):
                some = chosen[start : start + STEP_PARTITION]
                rows = connection.execute(
                    select(*_SUMMARY_COLUMNS).where(StepRow.run_id == run_id, StepRow.path.in_(some))
                )
                found.update((row.path, _step(row, payloads=False)) for row in rows)
            found_children = [_run(row) for row in connection.execute(kids)] if children > 0 else []
            return pairs, [found[path] for path in chosen if path in found], found_children

        return await self._sessions.query(read)

    # -- the hot path ----------------------------------------------------------------------------------------

    def submit_step(self, write: StepWrite) -> None:
        """Queue a step record for the writer; durable after the next ``flush``."""
        self._writer.submit(write)

    def submit_run(self, change: RunUpdate) -> None:
        """Queue a run change for the writer, ordered after the step records submitted before it."""
        self._writer.submit(change)

    async def flush(self, run_id: str | None = None) -> None:
        """Durability barrier. Raises ``WriteFailed`` if records of ``run_id`` (or any run) could not be written."""
        await self._writer.flush(run_id)
