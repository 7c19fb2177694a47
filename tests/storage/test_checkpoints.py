"""The store's WAL checkpoints run in their own thread, not in whichever commit takes the log past its limit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio
import pytest

from storage.checkpoints import Checkpointer
from storage.database import (
    create_sqlite_change_engine,
    create_sqlite_reader_engine,
    create_sqlite_writer_engine,
    parse_database_url,
)

pytestmark = pytest.mark.anyio

ROWS = 400  # about 200 KiB of log per batch


@contextmanager
def store_like_connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection set up as the store's are: WAL, and no checkpoints at commit."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
        yield connection


def write_batch(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO t (body) VALUES (?)", [("x" * 500,)] * ROWS)
    connection.execute("COMMIT")


def wal_size(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(30):
        while not condition():
            await anyio.sleep(0.005)


async def test_the_log_is_checkpointed_when_the_writer_asks_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    checkpointer = Checkpointer(path, check_s=3600, wake_records=10)  # only when asked, in this test
    try:
        with store_like_connection(path) as connection:
            write_batch(connection)
            first = wal_size(path)
            write_batch(connection)
            assert wal_size(path) > 1.8 * first  # commits do not checkpoint: the log grows
            grown = wal_size(path)

            checkpointer.wrote(9)
            checkpointer.wrote(1)  # ten records: asked
            await until(lambda: checkpointer.checkpoints == 1)
            write_batch(connection)
            assert wal_size(path) == grown  # checkpointed: the next writes start the log over

            rounds = checkpointer.rounds
            checkpointer.wrote(10)  # asked again, with the log unchanged since: nothing to do
            await until(lambda: checkpointer.rounds > rounds)
            assert checkpointer.checkpoints == 2  # the batch written after the first checkpoint
    finally:
        checkpointer.close()


def test_the_store_connections_do_not_checkpoint_at_commit(tmp_path: Path) -> None:
    db = parse_database_url(f"sqlite:///{tmp_path / 'p.db'}")
    engines = [
        create_sqlite_reader_engine(db, "normal", 1),
        create_sqlite_change_engine(db, "normal"),
        create_sqlite_writer_engine(db, "normal"),
    ]
    try:
        for engine in engines:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    finally:
        for engine in engines:
            engine.dispose()
    with closing(sqlite3.connect(tmp_path / "p.db")) as plain:  # what SQLite does by default
        assert plain.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)


async def test_a_small_log_is_left_alone_until_the_writer_asks(tmp_path: Path) -> None:
    """A quiet store's log (under a MiB) is not synced every second: it waits for QUIET_S, or for the writer."""
    path = tmp_path / "db.sqlite"
    checkpointer = Checkpointer(path, check_s=0.01, wake_records=10)
    try:
        with store_like_connection(path) as connection:
            write_batch(connection)  # about 200 KiB
            rounds = checkpointer.rounds
            await until(lambda: checkpointer.rounds >= rounds + 3)  # looked at it, three times
            assert checkpointer.checkpoints == 0
            checkpointer.wrote(10)
            await until(lambda: checkpointer.checkpoints == 1)
    finally:
        checkpointer.close()
