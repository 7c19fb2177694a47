"""Published versions (of tools, and of workflows): immutable ``name@version`` definitions, with a deprecated flag
that may change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from storage.errors import Duplicate
from storage.models import ServerRow, ToolRow, WorkflowRow
from storage.records import StoredTool, dumps, loads
from storage.sessions import Sessions


def _tool(row: Any) -> StoredTool:
    """A stored tool from a ``ToolRow`` or a row of its columns."""
    return StoredTool(
        name=row.name,
        version=row.version,
        definition=loads(row.definition),
        definition_hash=row.definition_hash,
        deprecated=row.deprecated,
        created_at=row.created_at,
    )


class ToolStore:
    """``store.tools`` and ``store.workflows``: the registry's tables of published versions."""

    def __init__(self, sessions: Sessions, table: type[ToolRow] | type[WorkflowRow] = ToolRow) -> None:
        self._sessions = sessions
        self._table = table

    async def put(
        self, name: str, version: str, definition: dict[str, Any], definition_hash: str, deprecated: bool = False
    ) -> tuple[StoredTool, bool]:
        """Insert ``name@version`` unless it exists. Returns the stored tool and whether it was created."""
        row = self._table(
            name=name,
            version=version,
            definition=dumps(definition),
            definition_hash=definition_hash,
            deprecated=deprecated,
            created_at=self._sessions.clock(),
        )
        try:
            await self._sessions.insert(row)
            return _tool(row), True
        except Duplicate:
            existing = await self.get(name, version)
            assert existing is not None, "a duplicate key on insert means the row exists"
            return existing, False

    async def get(self, name: str, version: str) -> StoredTool | None:
        query = select(self._table).where(self._table.name == name, self._table.version == version)

        def read(connection: Connection) -> StoredTool | None:
            row = connection.execute(query).first()
            return None if row is None else _tool(row)

        return await self._sessions.query(read)

    async def versions(self, name: str) -> list[StoredTool]:
        query = select(self._table).where(self._table.name == name)
        return await self._sessions.query(lambda connection: [_tool(r) for r in connection.execute(query)])

    async def all(self) -> list[StoredTool]:
        query = select(self._table).order_by(self._table.name, self._table.created_at)
        return await self._sessions.query(lambda connection: [_tool(r) for r in connection.execute(query)])

    async def names(self) -> list[str]:
        query = select(self._table.name).distinct().order_by(self._table.name)
        return await self._sessions.query(lambda connection: list(connection.scalars(query)))

    async def set_deprecated(self, name: str, version: str, deprecated: bool) -> StoredTool | None:
        table = self._table
        key = (table.name == name, table.version == version)
        statement = update(table).where(*key).values(deprecated=deprecated)

        def write(connection: Connection) -> StoredTool | None:
            if connection.execute(statement).rowcount == 0:
                return None
            return _tool(connection.execute(select(table).where(*key)).one())

        return await self._sessions.change(write)


class ServerStore:
    """``store.servers``: downstream MCP servers by name; registering one again replaces its definition."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def put(self, name: str, definition: dict[str, Any], definition_hash: str) -> bool:
        """Insert or replace ``name``'s definition. Returns whether anything changed."""
        now = self._sessions.clock()

        def write(connection: Connection) -> bool:
            found = connection.execute(select(ServerRow.definition_hash).where(ServerRow.name == name)).first()
            if found is not None and found.definition_hash == definition_hash:
                return False
            values = {"definition": dumps(definition), "definition_hash": definition_hash, "updated_at": now}
            if found is None:
                connection.execute(insert(ServerRow).values(name=name, **values))
            else:
                connection.execute(update(ServerRow).where(ServerRow.name == name).values(**values))
            return True

        return await self._sessions.change(write)

    async def get(self, name: str) -> dict[str, Any] | None:
        query = select(ServerRow.definition).where(ServerRow.name == name)
        text = await self._sessions.query(lambda connection: connection.scalar(query))
        return None if text is None else dict(loads(text))

    async def all(self) -> list[dict[str, Any]]:
        """Every server's definition, by name."""
        query = select(ServerRow.definition).order_by(ServerRow.name)
        return [dict(loads(t)) for t in await self._sessions.query(lambda connection: list(connection.scalars(query)))]
