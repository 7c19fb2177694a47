"""The database: its URL (`Database`), and the engines that reach it, SQLite through aiosqlite (default) or
PostgreSQL through asyncpg.

SQLite connections get WAL, foreign keys, a busy timeout and the configured ``synchronous`` level on connect,
and the driver's own transaction handling is replaced by explicit ``BEGIN`` statements so that SQLite's
transactions (including DDL) behave as SQLAlchemy expects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool

from storage.errors import UnsupportedDatabase

Durability = Literal["normal", "full"]
BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class Database:
    """A parsed database location: the async URL the store uses and, for SQLite, the file."""

    url: URL
    dialect: Literal["sqlite", "postgresql"]
    path: Path | None = None

    @property
    def display(self) -> str:
        return str(self.path) if self.path is not None else self.url.render_as_string(hide_password=True)


def parse_database_url(text: str) -> Database:
    """Accept ``sqlite:///file``, ``sqlite+aiosqlite:///file``, a bare file path, or ``postgresql[+asyncpg]://``."""
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        return Database(URL.create("sqlite+aiosqlite", database=str(path)), "sqlite", path)
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise UnsupportedDatabase(f"cannot parse database URL {text!r}: {exc}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.drivername not in ("sqlite", "sqlite+aiosqlite"):
            raise UnsupportedDatabase(f"SQLite URLs use the aiosqlite driver (sqlite:///FILE), not {url.drivername!r}")
        if not url.database or url.database == ":memory:":
            raise UnsupportedDatabase(
                "an in-memory SQLite database cannot hold durable runs; give a file, e.g. sqlite:///podium.db"
            )
        path = Path(url.database).expanduser().resolve()
        return Database(url.set(drivername="sqlite+aiosqlite", database=str(path)), "sqlite", path)
    if backend in ("postgresql", "postgres"):
        if url.drivername not in ("postgresql", "postgres", "postgresql+asyncpg"):
            raise UnsupportedDatabase(
                f"PostgreSQL URLs use the asyncpg driver (postgresql+asyncpg://...), not {url.drivername!r}"
            )
        return Database(url.set(drivername="postgresql+asyncpg"), "postgresql")
    raise UnsupportedDatabase(
        f"unsupported database {backend!r}; use SQLite (sqlite:///FILE) or PostgreSQL (postgresql+asyncpg://...)"
    )


def _ensure_wal(cursor: Any) -> None:
    """Put the file in WAL mode (it stays so). When several processes open a new file at once, SQLite answers
    the switch with "database is locked" without waiting on the busy timeout, so it is retried briefly."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError; which class depends on the driver in use
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_events(engine: Engine, durability: Durability, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below instead of the driver's implicit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _ensure_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={durability.upper()}")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # no commit checkpoints: the store's own thread does it
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def create_store_engine(db: Database, durability: Durability = "normal", *, immediate: bool = False) -> AsyncEngine:
    """The async engine for ``db``. ``immediate`` takes SQLite's write lock at BEGIN (used for migrations)."""
    if db.dialect == "sqlite":
        assert db.path is not None
        db.path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(db.url, poolclass=NullPool if immediate else None)
        _sqlite_events(engine.sync_engine, durability, "BEGIN IMMEDIATE" if immediate else "BEGIN")
        return engine
    return create_async_engine(db.url, pool_pre_ping=True)


def create_sqlite_reader_engine(db: Database, durability: Durability, readers: int) -> Engine:
    """A synchronous engine for reads in worker threads: a query is one hand-off to a thread and back, where the
    async driver makes one per cursor operation (a point read: about 18 of them)."""
    assert db.path is not None
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(db.path)),
        poolclass=QueuePool,
        pool_size=readers,
        max_overflow=0,
        connect_args={"check_same_thread": False},  # a pooled connection serves one thread at a time, any thread
    )
    _sqlite_events(engine, durability, "BEGIN")
    return engine


def create_sqlite_change_engine(db: Database, durability: Durability) -> Engine:
    """A synchronous engine for single writes in a worker thread (``Sessions.change``): one pooled connection
    that takes the write lock at BEGIN, so a write never fails to upgrade a read lock."""
    assert db.path is not None
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(db.path)),
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )
    _sqlite_events(engine, durability, "BEGIN IMMEDIATE")
    return engine


def create_sqlite_writer_engine(db: Database, durability: Durability) -> Engine:
    """A synchronous engine for the step writer's own thread: one connection, no thread handoff per statement."""
    assert db.path is not None
    engine = create_engine(URL.create("sqlite+pysqlite", database=str(db.path)), poolclass=NullPool)
    _sqlite_events(engine, durability, "BEGIN IMMEDIATE")
    return engine
