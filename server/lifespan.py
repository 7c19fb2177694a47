"""The server's state while it runs (settings, store, registry, engine) and the lifespan that opens and closes it.

``Running`` holds the state from start-up until the engine has stopped and the store is closed, for whoever drives
the process (to drain the engine on SIGTERM) and for the approval routes (which the SDK calls outside a session).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer

from patterns import Engine, PatternError
from patterns.workflows import workflow_checker
from registry import Registry, RegistryError, RegistryFile
from server.config import Settings
from server.errors import PodiumToolError
from server.eventloop import running_loop_name
from storage.errors import StorageError

if TYPE_CHECKING:
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
        # called when a server opening in the background cannot start (``serve_stdio`` ends the process); without
        # it the server stops, and the requests waiting for the state get the failure
        self.on_failure: Callable[[BaseException], None] | None = None
        # called once the state is open (``serving.tune_interpreter``: the process's long-lived objects are all there)
        self.on_open: Callable[[], None] | None = None


class Opening:
    """The lifespan context of a server that answers while its state opens (``lifespan(background=True)``)."""

    def __init__(self) -> None:
        self.opened = anyio.Event()
        self.state: AppState | None = None
        self.failure: str | None = None

    async def wait(self) -> AppState:
        await self.opened.wait()
        if self.state is None:
            raise PodiumToolError("internal", f"the server could not start: {self.failure}")
        return self.state


async def app_state(ctx: Context[Any]) -> AppState:
    """The state of the server serving a request (once it has opened)."""
    state = ctx.request_context.lifespan_context
    if isinstance(state, Opening):
        return await state.wait()
    assert isinstance(state, AppState)
    return state


def lifespan(
    settings: Settings,
    running: Running,
    http_url: str | None,
    *,
    background: bool = False,
    registry_files: Sequence[RegistryFile] | None = None,
) -> Callable[[MCPServer], AbstractAsyncContextManager[AppState | Opening]]:
    """Open the store (migrating it), load the registry files and start the engine; close them in reverse.

    ``background``: serve at once and open all that in a task, its imports (SQLAlchemy and the store) in a worker
    thread, so that a client's ``initialize`` and ``tools/list`` need not wait for them; requests that need the
    state wait until it is open. If it cannot open, waiting requests get the failure, ``running.on_failure`` is
    told, and the server stops. ``registry_files``: the files of ``settings.registry`` already loaded (the CLI loads
    them before it serves, so that a bad file is refused before any answer); else they are loaded here.
    """

    @asynccontextmanager
    async def serving(_server: MCPServer) -> AsyncIterator[AppState | Opening]:
        if not background:
            async with _opened(settings, running, http_url, registry_files) as state:
                yield state
            return
        opening = Opening()
        closing = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(
                _open_in_background, settings, running, http_url, registry_files, opening, closing, tasks.cancel_scope
            )
            try:
                yield opening
            finally:
                closing.set()  # the task stops the engine and closes the store

    return serving


async def _open_in_background(
    settings: Settings,
    running: Running,
    http_url: str | None,
    registry_files: Sequence[RegistryFile] | None,
    opening: Opening,
    closing: anyio.Event,
    serving: anyio.CancelScope,
) -> None:
    try:
        await anyio.to_thread.run_sync(importlib.import_module, "storage.store")
        async with _opened(settings, running, http_url, registry_files) as state:
            opening.state = state
            opening.opened.set()
            await closing.wait()
    except Exception as exc:
        if opening.opened.is_set():
            raise  # closing failed: as when opening in the foreground
        expected = isinstance(exc, PatternError | RegistryError | StorageError)
        if not expected or running.on_failure is None:  # else on_failure says it
            log.error("podium could not start: %s", failure_message(exc), exc_info=None if expected else exc)
        opening.failure = failure_message(exc)
        opening.opened.set()
        if running.on_failure is not None:
            running.on_failure(exc)
        serving.cancel()  # the server stops


def failure_message(exc: BaseException) -> str:
    """What a start-up failure says: the message of Podium's own errors, else the exception."""
    return str(getattr(exc, "message", None) or exc)


@asynccontextmanager
async def _opened(
    settings: Settings, running: Running, http_url: str | None, registry_files: Sequence[RegistryFile] | None
) -> AsyncIterator[AppState]:
    from storage import Store  # loaded here: a server opening in the background answers before it loads

    try:
        async with Store.open(settings.database_url, durability=settings.durability) as store:
            registry = Registry(store, sync_threads=settings.sync_tool_threads)
            check = workflow_checker(settings.limits, registry)
            for file in settings.registry if registry_files is None else registry_files:
                await registry.register_file(file, check_workflow=check)
            async with Engine(
                store,
                registry,
                settings.limits,
                lease_s=settings.lease_s,
                grace_s=settings.shutdown_grace_s,
                breaker=settings.breaker,
            ) as engine:
                log.info("podium serving with %s, on %s", store.db.display, running_loop_name())
                running.state = AppState(settings, store, registry, engine, http_url)
                if running.on_open is not None:
                    running.on_open()
                try:
                    yield running.state
                finally:
                    # A tool's unflushed print() would otherwise be flushed at exit, after the stdio transport
                    # has pointed fd 1 back at the wire; flushed now, it goes where fd 1 is diverted (stderr).
                    sys.stdout.flush()
    finally:
        running.state = None  # gone once the engine has stopped and the store is closed
