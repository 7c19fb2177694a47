"""The step writer: group commit of step records and run updates.

The engine never waits on the database per step. It hands each record to the writer, which takes whatever is
pending, writes it in one transaction, and releases the engine's durability barriers (``flush``) once the
transaction has committed. Several writes of the same step in one batch (``started`` then ``completed``)
collapse into the last one. For SQLite the writer is a thread owning one synchronous connection, so a batch
costs one thread handoff and one commit instead of one handoff per statement; for PostgreSQL it is a task on
the event loop using the async engine.

A batch that fails is retried run by run, so one run's bad record cannot lose another run's records; the
failure is reported to that run's next ``flush``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import anyio
from sqlalchemy import Connection, Engine, Insert, Table, Update, literal_column, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import driver_sql
from storage.errors import WriteFailed
from storage.models import EventRow, RunRow, StepRow
from storage.records import DUPLICATE_S, STEP_COLUMNS, EventInsert, RunInsert, RunUpdate, StepWrite, dumps

log = logging.getLogger("podium.storage")

Op = StepWrite | RunUpdate | RunInsert | EventInsert
_STEPS: Table = StepRow.__table__  # type: ignore[assignment]
_RUNS: Table = RunRow.__table__  # type: ignore[assignment]
_EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
_event_inserts: dict[str, Insert] = {}
_STEP_UPDATE_COLUMNS = [c.name for c in _STEPS.columns if c.name not in ("run_id", "path")]
_upserts: dict[str, Insert] = {}
_run_update_texts: dict[tuple[str, ...], str] = {}
COALESCE_S = 0.02  # the SQLite writer gathers records nobody waits for this long before writing them,
BATCH_RECORDS = 256  # or until this many are pending


def _step_upsert(dialect: str) -> Insert:
    """``INSERT .. ON CONFLICT (run_id, path) DO UPDATE``, built once per dialect."""
    stmt = _upserts.get(dialect)
    if stmt is None:
        # the dialect's own module, imported here: a SQLite server never loads PostgreSQL's, and the reverse
        module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        insert = module.insert(_STEPS)
        stmt = insert.on_conflict_do_update(
            index_elements=[_STEPS.c.run_id, _STEPS.c.path],
            set_={name: insert.excluded[name] for name in _STEP_UPDATE_COLUMNS},
        )
        _upserts[dialect] = stmt
    return stmt


def _event_insert(dialect: str) -> Insert:
    """``INSERT .. ON CONFLICT (id) DO UPDATE .. WHERE`` the stored event is older than ``DUPLICATE_S``: a
    duplicate written behind keeps the first record."""
    stmt = _event_inserts.get(dialect)
    if stmt is None:
        module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        insert = module.insert(_EVENTS)
        stmt = _event_inserts[dialect] = insert.on_conflict_do_update(
            index_elements=[_EVENTS.c.id],
            set_={c.name: insert.excluded[c.name] for c in _EVENTS.columns if c.name != "id"},
            where=_EVENTS.c.received_at < insert.excluded.received_at - literal_column(repr(DUPLICATE_S)),
        )
    return stmt


def _run_update(change: RunUpdate, now: float) -> Update:
    statement = update(_RUNS).where(_RUNS.c.id == change.run_id)
    if change.owner is not None:
        statement = statement.where(_RUNS.c.lease_owner == change.owner)
    return statement.values(_run_values(change, now))


def _run_update_sql(change: RunUpdate, now: float) -> tuple[str, tuple[Any, ...]]:
    """SQLite: the same update as driver SQL and its parameters. Building and caching a SQLAlchemy statement per
    update costs the writer's thread about 150 us, most of a small batch; the SQL for a set of columns is made
    once."""
    values = _run_values(change, now)
    key = (*values, "" if change.owner is None else "owner")
    sql = _run_update_texts.get(key)
    if sql is None:
        assignments = ", ".join(f'"{name}" = ?' for name in values)
        fence = ' AND "lease_owner" = ?' if change.owner is not None else ""
        sql = _run_update_texts[key] = f'UPDATE "runs" SET {assignments} WHERE "id" = ?{fence}'
    fenced = () if change.owner is None else (change.owner,)
    return sql, (*values.values(), change.run_id, *fenced)


def _run_values(change: RunUpdate, now: float) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": change.at if change.at is not None else now}
    if change.status is not None:
        values["status"] = change.status
    if change.set_output:
        values["output"] = change.output_json
    if change.set_error:
        values["error"] = None if change.error is None else dumps(change.error)
    if change.missing is not None:
        values["missing"] = dumps(change.missing)
    if change.usage_steps is not None:
        values["usage_steps"] = change.usage_steps
    if change.usage_cost is not None:
        values["usage_cost"] = change.usage_cost
    if change.started_at is not None:
        values["started_at"] = change.started_at
    if change.finished_at is not None:
        values["finished_at"] = change.finished_at
    if change.time_left_s is not None:
        values["time_left_s"] = change.time_left_s
    return values


def apply_batch(connection: Connection, ops: list[Op], now: float) -> None:
    """Write ``ops`` on ``connection`` (inside the caller's transaction): events written behind and new runs
    first, then steps, then run updates."""
    steps: dict[tuple[str, str], StepWrite] = {}
    runs: list[RunUpdate] = []
    inserts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for op in ops:
        if isinstance(op, StepWrite):
            steps[(op.run_id, op.path)] = op
        elif isinstance(op, RunUpdate):
            runs.append(op)
        elif isinstance(op, EventInsert):
            events.append(op.row)
        else:
            inserts.append(op.row)
    if events:
        driver_sql.execute(connection, "events written behind", _event_insert, events)
    if inserts:
        connection.execute(_RUNS.insert(), inserts)
    qmark = connection.dialect.paramstyle == "qmark"
    if steps:
        if qmark:
            # SQLite: the compiled statement with plain tuples skips SQLAlchemy's per-row parameter processing,
            # which is most of a batch's cost here (the writer holds the GIL while it runs)
            sql, order = driver_sql.compiled(connection, "steps", _step_upsert)
            if order == STEP_COLUMNS:
                values = [s.values() for s in steps.values()]
            else:
                rows = [s.row() for s in steps.values()]
                values = [tuple(row[name] for name in order) for row in rows]
            cursor = connection.connection.cursor()
            try:
                driver_sql.insert_rows(cursor, sql, values)
            finally:
                cursor.close()
        else:
            connection.execute(_step_upsert(connection.dialect.name), [s.row() for s in steps.values()])
    for change in runs:
        if qmark:
            connection.exec_driver_sql(*_run_update_sql(change, now))
        else:
            connection.execute(_run_update(change, now))


def _by_run(ops: list[Op]) -> dict[str, list[Op]]:
    groups: dict[str, list[Op]] = {}
    for op in ops:
        groups.setdefault(op.run_id, []).append(op)
    return groups


class _Barriers:
    """Sequence numbers and the waiters of ``flush``. Shared by both writers; guarded by ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[Op] = []
        self.submitted = 0
        self.durable = 0
        self.waiters: list[tuple[int, anyio.Event]] = []
        self.errors: dict[str, str] = {}

    def release(self) -> None:
        """Set the events of every waiter whose target is durable now. Runs on the event loop."""
        with self.lock:
            durable = self.durable
            ready = [event for target, event in self.waiters if target <= durable]
            self.waiters = [(target, event) for target, event in self.waiters if target > durable]
        for event in ready:
            event.set()

    def check(self, run_id: str | None) -> None:
        """Raise the write failure of ``run_id``, if its records could not be written. Failures belong to their
        run: a barrier of another run, or a plain flush, is not failed by them."""
        if run_id is None:
            return
        with self.lock:
            if run_id in self.errors:
                raise WriteFailed(run_id, self.errors[run_id])


class StepWriter:
    """What both writers share: ``submit`` never blocks; ``flush`` returns once everything submitted before it is
    durable; a batch is written in one transaction, or run by run if that fails."""

    def __init__(self, clock: Callable[[], float], lock: AbstractContextManager[Any] | None = None) -> None:
        """``lock``: held around each transaction (SQLite: shared with the store's other writing connection)."""
        self._b = _Barriers()
        self._clock = clock
        self._closing = False
        self._lock = lock if lock is not None else nullcontext()

    def submit(self, op: Op) -> int:
        """Queue ``op``; returns its sequence number (it is durable once ``durable`` reaches it)."""
        b = self._b
        with b.lock:
            b.pending.append(op)
            b.submitted += 1
            sequence = b.submitted
            full = len(b.pending) >= BATCH_RECORDS
        self._kick(urgent=full)
        return sequence

    @property
    def durable(self) -> int:
        """The sequence number up to which every submitted record is written (or has failed: see ``flush``)."""
        return self._b.durable

    async def flush(self, run_id: str | None = None) -> None:
        """Durability barrier: wait until every record submitted so far is committed (or has failed).

        Raises:
            WriteFailed: records of ``run_id`` could not be written.
        """
        b = self._b
        with b.lock:
            target = b.submitted
            if b.durable >= target:
                event = None
            else:
                event = anyio.Event()
                b.waiters.append((target, event))
        if event is not None:
            self._kick(urgent=True)
            await event.wait()
        b.check(run_id)

    def _kick(self, urgent: bool) -> None:
        """Make sure the writer is awake; ``urgent``: write what is pending now (someone waits for it to be durable,
        or a batch's worth is pending)."""
        raise NotImplementedError

    def _take(self) -> tuple[list[Op], int]:
        """What is pending, and how many records will be durable once it is written."""
        b = self._b
        with b.lock:
            ops, b.pending = b.pending, []
            return ops, b.submitted

    def _done(self, upto: int) -> bool:
        """Everything up to ``upto`` is written; returns whether someone waits on it."""
        with self._b.lock:
            self._b.durable = upto
            return bool(self._b.waiters)

    async def aclose(self) -> None:
        raise NotImplementedError

    def _write(self, connection: Connection, ops: list[Op]) -> None:
        """Write ``ops`` in one transaction; if that fails, once per run so that other runs' records survive."""

        def attempt(group: list[Op]) -> None:
            with self._lock, connection.begin():
                apply_batch(connection, group, self._clock())

        try:
            attempt(ops)
            return
        except Exception:
            log.warning("batch of %d records failed; retrying run by run", len(ops), exc_info=True)
        for run_id, group in _by_run(ops).items():
            try:
                attempt(group)
            except Exception as exc:  # any driver error is recorded against the run and reported by flush
                self._failed(run_id, exc)

    def _failed(self, run_id: str, exc: Exception) -> None:
        log.error("records of run %s could not be written", run_id, exc_info=exc)
        with self._b.lock:
            self._b.errors[run_id] = f"{type(exc).__name__}: {exc}"


class ThreadedWriter(StepWriter):
    """SQLite: a thread with one synchronous connection; one handoff and one commit per batch.

    Records nobody waits for yet are gathered for up to ``COALESCE_S``, or until ``BATCH_RECORDS`` are pending,
    before they are written: fewer, larger batches, and a writer that wakes (and takes the interpreter's lock from
    the steps executing) once per batch instead of once per record. Each batch is a turn of this thread that a
    worker thread or the event loop, woken meanwhile, waits behind: a chain of sync steps (two such wake-ups each)
    met one every 2 ms when this was 2 ms (README, "Performance": part 3 of ``bench/mcp_bench.py``). The count bounds
    what a batch, and the final flush of a long run, holds. A ``flush`` ends the gathering at once, so no barrier
    waits longer for it; what is gathered is lost in a crash, as it would be a moment earlier (those records are
    of idempotent steps, repeated on recovery: the others flush before their call)."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float],
        wrote: Callable[[int], None] | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        """``wrote``: told, in the writer's thread, how many records each committed batch held; ``lock``: held
        around each transaction, shared with the store's other writing connection (``Sessions.change``), so that
        of the two one waits on the other's commit, never in SQLite's busy handler, which sleeps in steps of 1 to
        100 ms."""
        super().__init__(clock, lock)
        self._engine = engine
        self._wrote = wrote
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name="podium-writer", daemon=True)
        self._thread.start()

    def _kick(self, urgent: bool) -> None:
        if urgent and not self._urgent.is_set():
            self._urgent.set()
        if not self._wake.is_set():
            self._wake.set()

    def _main(self) -> None:
        with self._engine.connect() as connection:
            while True:
                self._wake.wait()
                if not self._closing:
                    self._urgent.wait(COALESCE_S)  # gather more, unless a flush waits
                with self._b.lock:
                    self._wake.clear()
                    self._urgent.clear()
                    closing = self._closing
                ops, upto = self._take()
                if ops:
                    self._write(connection, ops)
                    if self._wrote is not None:
                        self._wrote(len(ops))
                if self._done(upto) and not self._loop.is_closed():
                    self._loop.call_soon_threadsafe(self._b.release)
                if closing and not ops:
                    return

    async def aclose(self) -> None:
        """Write what is pending, then stop the thread and close its connection."""
        try:
            await self.flush()
        finally:
            self._closing = True
            self._urgent.set()
            self._wake.set()
            await anyio.to_thread.run_sync(self._thread.join)
            self._engine.dispose()


class AsyncWriter(StepWriter):
    """PostgreSQL: a task on the event loop batching into one transaction per round trip."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self._engine = engine
        self._wake = anyio.Event()

    def _kick(self, urgent: bool) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            closing = self._closing
            ops, upto = self._take()
            if ops:
                try:
                    async with self._engine.connect() as connection:
                        await connection.run_sync(self._write, ops)
                except Exception as exc:  # no connection: each run of the batch learns it at its next flush
                    for run_id in _by_run(ops):
                        self._failed(run_id, exc)
            self._done(upto)
            self._b.release()
            if closing and not ops:
                return

    async def aclose(self) -> None:
        try:
            await self.flush()
        finally:
            self._closing = True
            self._wake.set()
