"""Sessions on the store's database, through which driver errors arrive as ``StorageError``s.

Every read and write of the store goes through a ``Sessions`` (the step writer's batches aside): an insert whose key
is taken raises ``Duplicate``, and anything else the database or its driver raises (unreachable, locked, out of
space) raises ``DatabaseError`` with a one-line cause, so nothing above ``storage`` handles SQLAlchemy's errors.

On SQLite every write is a ``change`` (``execute`` and ``insert`` are made of it), so that it takes turns with the
step writer's thread on the store's write lock; the async driver only reads (``read``).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import sqlalchemy
from sqlalchemy import Connection, CursorResult, Engine, Executable
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import driver_sql
from storage.errors import DatabaseError, Duplicate, StorageError
from storage.threads import WorkerThreads

DRIVER_ERRORS = (SQLAlchemyError, OSError, sqlite3.Error)
T = TypeVar("T")


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Raise the database's and the driver's errors as ``Duplicate`` or ``DatabaseError``."""
    try:
        yield
    except StorageError:
        raise
    except (IntegrityError, sqlite3.IntegrityError) as exc:  # the latter from driver SQL (``storage.driver_sql``)
        raise Duplicate(" ".join(str(getattr(exc, "orig", exc)).split())) from exc
    except DRIVER_ERRORS as exc:
        raise DatabaseError(exc) from exc


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


class Sessions:
    """The store's way to its database. ``clock`` gives the time the records are stamped with.

    ``readers`` (SQLite): a synchronous engine whose connections serve ``query`` in worker threads, at most
    ``reader_threads`` at once; ``writers`` (SQLite) likewise serves ``change``, one at a time, each transaction
    holding ``write_lock`` (shared with the step writer's thread: the store's writers wait on each other's commit
    rather than in SQLite's busy handler). Without them (PostgreSQL), both run on connections of the async
    engine.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], float] = time.time,
        readers: Engine | None = None,
        reader_threads: int = 1,
        writers: Engine | None = None,
        write_lock: threading.Lock | None = None,
    ) -> None:
        self._engine = engine
        self._maker = async_sessionmaker(engine, expire_on_commit=False)
        self.clock = clock
        self._readers = readers
        self._threads = WorkerThreads(reader_threads, name="podium-read")
        self._writers = writers
        self._writer_threads = anyio.CapacityLimiter(1)  # SQLite has one writer at a time anyway
        self._write_lock = write_lock if write_lock is not None else threading.Lock()
        self._loop_connection: sqlite3.Connection | None = None  # ``point``'s, used on the event loop only

    async def query(self, read: Callable[[Connection], T]) -> T:
        """``read(connection)``: a synchronous function of a connection in a read transaction, and its result.

        On SQLite it runs in a worker thread, one hand-off for the whole read where the async driver makes one per
        cursor operation; on PostgreSQL, on the async engine's connection (without a thread)."""
        async with translated():
            if self._readers is None:
                async with self._engine.connect() as connection:
                    return await connection.run_sync(read)
            return await self._threads.run(functools.partial(self._query, read))

    def _query(self, read: Callable[[Connection], T]) -> T:
        assert self._readers is not None
        with self._readers.connect() as connection:
            return read(connection)

    async def point(self, name: str, build: Callable[[str], Any], params: dict[str, Any]) -> Any:
        """The first row of ``build(dialect)`` with ``params``, or None: a select of one row by its primary key or a
        unique index (a few pages, never a scan), for reads on a hot path.

        On SQLite it runs on the event loop, on a connection of its own made for it: a B-tree descent on pages the
        OS has cached costs far less than the hand-off to a reader thread and back, and a reader of a WAL database
        does not wait for the writer. It is never made to wait: ``busy_timeout`` is 0, and
        the rare busy answer (the log being recovered) sends the read to a reader thread instead. Elsewhere it is
        ``query``."""
        if self._readers is None:
            return await self.query(lambda connection: driver_sql.first(connection, name, build, params))
        sql, order = driver_sql.compiled_for(self._readers.dialect, name, build)
        try:  # the errors translated as ``translated`` does, without its context manager: this is a hot path
            cursor = self._loop_reader().execute(sql, [params[key] for key in order])
            try:
                row = cursor.fetchone()
                return None if row is None else driver_sql.named(cursor, row)
            finally:
                cursor.close()  # resets the statement: no read snapshot stays open
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise DatabaseError(exc) from exc
        except sqlite3.Error as exc:
            raise DatabaseError(exc) from exc
        return await self.query(lambda connection: driver_sql.first(connection, name, build, params))

    def _loop_reader(self) -> sqlite3.Connection:
        connection = self._loop_connection
        if connection is None:
            assert self._readers is not None and self._readers.url.database is not None
            # autocommit: each statement reads the latest commit, and no read transaction stays open
            connection = sqlite3.connect(self._readers.url.database, isolation_level=None)
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA query_only=ON")
            self._loop_connection = connection
        return connection

    def close(self) -> None:
        """Close the connection ``point`` made (the engines' connections are their own)."""
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None

    async def change(self, write: Callable[[Connection], T]) -> T:
        """``write(connection)``: a synchronous function of a connection in a write transaction, committed when it
        returns (rolled back if it raises), and its result. On SQLite it runs in a worker thread holding the write
        lock from its start; on PostgreSQL, on a connection of the async engine."""
        async with translated():
            if self._writers is None:
                async with self._engine.begin() as connection:
                    return await connection.run_sync(write)
            return await anyio.to_thread.run_sync(self._change, write, limiter=self._writer_threads)

    def _change(self, write: Callable[[Connection], T]) -> T:
        assert self._writers is not None
        with self._write_lock, self._writers.begin() as connection:
            return write(connection)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading (and for writes the caller commits itself)."""
        async with translated(), self._maker() as session:
            yield session

    async def execute(self, statement: Executable) -> int:
        """One write statement in a transaction of its own (``change``); how many rows it matched."""
        return await self.change(lambda connection: _rowcount(connection.execute(statement)))

    async def insert(self, row: Any) -> None:
        """Insert the new mapped object ``row`` in a write transaction of its own (``change``): the attributes it
        was given, and the columns' defaults for the others."""
        mapper = sqlalchemy.inspect(row).mapper
        given = row.__dict__
        values = {attr.columns[0].name: given[attr.key] for attr in mapper.column_attrs if attr.key in given}
        table = mapper.local_table
        await self.execute(table.insert().values(values))
