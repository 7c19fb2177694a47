"""Statements compiled once to the driver's SQL, for the hot writes on SQLite.

SQLAlchemy's execution of a cached statement still processes each parameter and sets up an execution context and
a result per call; on SQLite, where the driver runs in the calling thread, that is most of a small write's cost.
A statement whose values are plain (strings, numbers, None) can skip it: compiled once per dialect, executed on
the transaction's own DBAPI cursor with a tuple in the compiled parameter order. Other dialects (PostgreSQL's
driver is async) execute the statement through SQLAlchemy as usual.
"""

from __future__ import annotations

import itertools
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_compiled: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
_multi_row: dict[tuple[str, int], str] = {}
MAX_ROWS = 256  # rows per multi-row statement: at most 256 x the columns of a row bound, far under SQLite's 32,766


def compiled(connection: Connection, name: str, build: Callable[[str], ClauseElement]) -> tuple[str, tuple[str, ...]]:
    """The statement ``build(dialect)`` as driver SQL and the names of its parameters in order, compiled once per
    dialect under ``name``."""
    return compiled_for(connection.dialect, name, build)


def compiled_for(dialect: Dialect, name: str, build: Callable[[str], ClauseElement]) -> tuple[str, tuple[str, ...]]:
    """``compiled`` for a dialect rather than a connection's."""
    found = _compiled.get((name, dialect.name))
    if found is None:
        statement = build(dialect.name).compile(dialect=dialect)
        assert isinstance(statement, SQLCompiler) and statement.positiontup is not None, name
        found = _compiled[(name, dialect.name)] = (str(statement), tuple(statement.positiontup))
    return found


def execute(
    connection: Connection, name: str, build: Callable[[str], Any], params: dict[str, Any] | list[dict[str, Any]]
) -> None:
    """Execute ``build(dialect)`` with ``params``: one row, or many rows of a single-row INSERT (``insert_rows``)."""
    if connection.dialect.paramstyle != "qmark":
        statement: Executable = build(connection.dialect.name)
        connection.execute(statement, params)
        return
    sql, order = compiled(connection, name, build)
    cursor = connection.connection.cursor()
    try:
        if isinstance(params, dict):
            cursor.execute(sql, tuple(params[key] for key in order))
        else:
            insert_rows(cursor, sql, [tuple(row[key] for key in order) for row in params])
    finally:
        cursor.close()


def insert_rows(cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Execute the single-row INSERT ``sql`` (the placeholders of its one ``VALUES`` group its only ones) for each of
    ``rows``, as a few multi-row statements rather than ``executemany``, which steps the statement once per row.
    Each step releases the interpreter's lock and must take it back; while the event loop runs Python without a
    pause (a long chain of quick steps, a stream of events), a thread gets it back only when the loop is made to
    yield it, once per switch interval (``server.serving.tune_interpreter``), so a writer's thread wrote a row per
    interval and fell behind by thousands. Row counts are powers of two up to ``MAX_ROWS`` (60 rows are four
    statements), so a connection prepares and caches a few statements, not one per batch size."""
    for statement, values in _statements(sql, rows):
        cursor.execute(statement, values)


def insert_returning(
    connection: Connection, name: str, build: Callable[[str], Any], params: Sequence[dict[str, Any]]
) -> list[Any]:
    """SQLite only: the rows the single-row INSERT .. RETURNING ``build(dialect)`` returns for all of ``params``,
    written as ``insert_rows`` writes (a few multi-row statements), as rows whose columns are attributes. Which
    input row a returned row comes from is for its columns to say: SQLite returns them in no promised order."""
    assert connection.dialect.paramstyle == "qmark", name
    sql, order = compiled(connection, name, build)
    rows = [tuple(row[key] for key in order) for row in params]
    found: list[Any] = []
    cursor = connection.connection.cursor()
    try:
        for statement, values in _statements(sql, rows):
            cursor.execute(statement, values)
            found.extend(named(cursor, row) for row in cursor.fetchall())
    finally:
        cursor.close()
    return found


def _statements(sql: str, rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The multi-row statements (and their values) that write ``rows`` with the single-row INSERT ``sql``: row
    counts are powers of two up to ``MAX_ROWS``."""
    done = 0
    while done < len(rows):
        count = min(MAX_ROWS, 1 << ((len(rows) - done).bit_length() - 1))
        chunk = rows[done : done + count]
        yield _multi_row_sql(sql, len(chunk[0]), count), tuple(itertools.chain.from_iterable(chunk))
        done += count


def _multi_row_sql(sql: str, width: int, count: int) -> str:
    found = _multi_row.get((sql, count))
    if found is None:
        group = "(" + ", ".join("?" * width) + ")"
        head, values, tail = sql.partition(f"VALUES {group}")
        assert values and sql.count("?") == width, f"not a single-row INSERT of {width} values: {sql[:80]}"
        found = _multi_row[(sql, count)] = f"{head}VALUES {', '.join([group] * count)}{tail}"
    return found


def first(connection: Connection, name: str, build: Callable[[str], Any], params: dict[str, Any]) -> Any:
    """The first row ``build(dialect)`` returns with ``params`` (a select, or a write with RETURNING), or None;
    its columns are attributes."""
    if connection.dialect.paramstyle != "qmark":
        statement: Executable = build(connection.dialect.name)
        return connection.execute(statement, params).first()
    sql, order = compiled(connection, name, build)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, tuple(params[key] for key in order))
        row = cursor.fetchone()
        if row is None:
            return None
        cursor.fetchall()  # a RETURNING statement completes only once its rows are read
        return named(cursor, row)
    finally:
        cursor.close()


_row_types: dict[tuple[str, ...], Callable[..., Any]] = {}


def named(cursor: Any, values: tuple[Any, ...]) -> Any:
    """A row of ``cursor`` whose columns are attributes, as SQLAlchemy's rows have (a ``row_factory``)."""
    names = tuple(column[0] for column in cursor.description)
    row_type = _row_types.get(names)
    if row_type is None:
        row_type = _row_types[names] = namedtuple("Row", names)
    return row_type(*values)


def rows(
    connection: Connection,
    name: str,
    build: Callable[[str], Any],
    params: dict[str, Any],
    tail: str = "",
    tail_params: Sequence[Any] = (),
) -> list[Any]:
    """SQLite only: every row of ``build(dialect)`` with ``params`` (SQL ``tail`` appended, with its own
    positional ``tail_params``), as rows whose columns are attributes."""
    assert connection.dialect.paramstyle == "qmark", name
    sql, order = compiled(connection, name, build)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql + tail, (*(params[key] for key in order), *tail_params))
        return [named(cursor, row) for row in cursor.fetchall()]
    finally:
        cursor.close()
