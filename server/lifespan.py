"""The server's state while it runs (settings, store, registry, engine) and the lifespan that opens and closes it.

``Running`` holds the state from start-up until the engine has stopped and the store is closed, for whoever drives
the process (to drain the engine on SIGTERM) and for the approval routes (which the SDK calls outside a session).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from patterns import Engine
from patterns.workflows import workflow_checker
from registry import Registry
from server.config import Settings
from storage import Store

log = logging.getLogger("podium.server")


@dataclass
class AppState:
    settings: Settings
    store: Store
    registry: Registry
    engine: Engine
    http_url: str | None = None


class Running:
    """Where a server keeps its ``AppState`` while it runs: ``state`` is None before start-up and after shutdown."""

    def __init__(self) -> None:
        self.state: AppState | None = None


def app_state(ctx: Context[Any]) -> AppState:
    """The state of the server serving a request."""
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


def lifespan(
    settings: Settings, running: Running, http_url: str | None
) -> Callable[[MCPServer], AbstractAsyncContextManager[AppState]]:
    """Open the store (migrating it), load the registry files and start the engine; close them in reverse."""

    @asynccontextmanager
    async def serving(_server: MCPServer) -> AsyncIterator[AppState]:
        try:
            async with Store.open(settings.database_url, durability=settings.durability) as store:
                registry = Registry(store, sync_threads=settings.sync_tool_threads)
                check = workflow_checker(settings.limits, registry)
                for path in settings.registry:
                    await registry.register_file(path, check_workflow=check)
                async with Engine(
                    store,
                    registry,
                    settings.limits,
                    lease_s=settings.lease_s,
                    grace_s=settings.shutdown_grace_s,
                    breaker=settings.breaker,
                ) as engine:
                    log.info("podium serving with %s", store.db.display)
                    running.state = AppState(settings, store, registry, engine, http_url)
                    try:
                        yield running.state
                    finally:
                        # A tool's unflushed print() would otherwise be flushed at exit, after the stdio transport
                        # has pointed fd 1 back at the wire; flushed now, it goes where fd 1 is diverted (stderr).
                        sys.stdout.flush()
        finally:
            running.state = None  # gone once the engine has stopped and the store is closed

    return serving
