"""Bring a database's schema to the newest migration. Safe to run from several processes at once.

A database already at the newest revision (every start but the first) is checked with one query; Alembic is
imported only when there is something to upgrade.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from storage.database import Database, create_store_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0010"
"""The newest revision in migrations/versions (a test checks that it is Alembic's head)."""
VERSION_TABLE = "alembic_version"
logging.getLogger("alembic").setLevel(logging.WARNING)  # upgrades are routine; their chatter is not news
# An arbitrary, fixed key for PostgreSQL's advisory lock that serialises concurrent upgrades.
_PG_LOCK_KEY = 7_214_003_551


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The head of the migration scripts, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    if _current(connection) != HEAD:
        from alembic import command

        command.upgrade(_config(connection), "head")


async def upgrade(db: Database) -> None:
    """Upgrade ``db`` to the head revision inside one transaction that holds the database's write lock."""
    engine = create_store_engine(db, immediate=True)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()


async def current_revision(db: Database) -> str | None:
    engine = create_store_engine(db)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current)
    finally:
        await engine.dispose()
