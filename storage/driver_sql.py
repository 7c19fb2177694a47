"""Statements compiled once to the driver's SQL, for the hot writes on SQLite.

SQLAlchemy's execution of a cached statement still processes each parameter and sets up an execution context and
a result per call; on SQLite, where the driver runs in the calling thread, that is most of a small write's cost.
A statement whose values are plain (strings, numbers, None) can skip it: compiled once per dialect, executed on
the transaction's own DBAPI cursor with a tuple in the compiled parameter order. Other dialects (PostgreSQL's
driver is async) execute the statement through SQLAlchemy as usual.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_compiled: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


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
    """Execute ``build(dialect)`` with ``params``: one row, or many."""
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
            cursor.executemany(sql, [tuple(row[key] for key in order) for row in params])
    finally:
        cursor.close()


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
