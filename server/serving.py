"""Serving from a process: stdio or streamable HTTP, and a graceful stop on SIGTERM or SIGINT.

On a stop signal the engine drains at once: it refuses new runs, stops adopting other replicas' runs and starts no
new step, while tool calls in flight get up to ``shutdown_grace_s`` to finish. Callers waiting on a run get their
answer (the run still ``running``) instead of a dropped connection. Then the leases are released, so another
replica resumes the runs at once rather than when their leases expire.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
import signal
import socket
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

from server.approvals import host_checks
from server.config import Settings
from server.lifespan import Running, failure_message
from server.stdio import limited_stdin

log = logging.getLogger("podium.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_ALLOCATION = 128 * 1024


TRIM_EVERY_S = 1.0
TRIM_AFTER_GROWTH = 16 * 1024 * 1024


def _libc() -> Any:
    """glibc's functions, or None where the C library is another (then memory is left as it is)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def return_freed_memory() -> None:
    """Have glibc serve every allocation of 128 KiB or more from its own mapping, returned to the system when
    freed. Its default raises that threshold as large blocks are freed, after which large payloads (a tool's
    1 MB output, a refused request) are carved from the heap and the process keeps their memory once they are gone.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION)


SWITCH_INTERVAL_S = 0.001  # how long the interpreter lets a thread run Python while another waits for it


def tune_interpreter() -> None:
    """Set the interpreter up for serving, once the store, registry and engine are open:

    - Collect, then freeze (``gc.freeze``) what is left: the objects a server holds for as long as it runs (the
      modules of the SDK, pydantic and SQLAlchemy, the registry, the store's engines). CPython's full collection
      walks every object it tracks, and it comes again and again under load (each time a quarter as many objects
      as the last one left have survived two younger collections, as the records of runs and events do): with
      those objects in it, each one stalls the event loop for tens of milliseconds (``bench/events_bench.py``
      prints what the collector cost with and without this). Frozen, they are never walked again; freeing them by
      reference counting still works.
    - A switch interval of ``SWITCH_INTERVAL_S`` instead of 5 ms. While the event loop runs Python without a pause
      (a long chain of quick steps, a stream of events), another thread gets the interpreter only when the loop is
      made to yield it, after the interval, and the step writer's thread needs it back after each statement: with
      5 ms its batches fell behind by the whole burst, so the records written behind stayed undurable, and the
      burst's last answer waited for all of them. With no thread waiting, the interval changes nothing.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


async def trim_memory() -> None:
    """Hand memory freed in the allocator's arenas back to the system once the process has grown by 16 MiB since
    the last look: a run that moved a lot of data (many small blocks, such as SQLite's pages) leaves the arenas
    fragmented, and glibc does not return that memory by itself. Checked every second; the trim runs in a thread."""
    libc = _libc()
    if libc is None:
        return
    baseline = _rss_bytes()
    while True:
        await anyio.sleep(TRIM_EVERY_S)
        now = _rss_bytes()
        if now > baseline + TRIM_AFTER_GROWTH:
            await anyio.to_thread.run_sync(libc.malloc_trim, 0)
            baseline = _rss_bytes()  # what is left is in use: trim again only once it grows by as much again
        else:
            baseline = min(baseline, now)


def _drain(running: Running, why: str) -> None:
    app = running.state
    if app is not None and not app.engine.draining:
        grace = app.settings.shutdown_grace_s
        log.info("%s: draining (no new runs or steps; up to %gs for steps in flight)", why, grace)
        app.engine.drain()


async def serve_stdio(mcp: MCPServer, running: Running, max_request_bytes: int) -> None:
    """Serve stdio until the client closes the stream, or until a stop signal arrives: then drain, shut the
    server down, and end the process by that signal (the transport's stdin reader cannot be interrupted).
    Requests over ``max_request_bytes`` are refused before the transport reads them."""
    running.on_failure = _exit_failed
    running.on_open = tune_interpreter
    with limited_stdin(max_request_bytes):
        async with anyio.create_task_group() as tg:
            if sys.platform != "win32":  # anyio has no signal receivers on Windows: there the client ends the server
                tg.start_soon(_stop_on_signal, tg.cancel_scope, running)
            tg.start_soon(trim_memory)
            await mcp.run_stdio_async()
            tg.cancel_scope.cancel()


def _exit_failed(exc: BaseException) -> None:
    """The store, registry or engine could not open (``lifespan(background=True)``): say why, as any failing
    command does, and end the process at once (the transport's stdin reader cannot be interrupted)."""
    print(f"podium: {failure_message(exc)}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(2)


async def _stop_on_signal(scope: anyio.CancelScope, running: Running) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        signum = await anext(aiter(signals))
    _drain(running, f"received {signal.Signals(signum).name}")
    with anyio.CancelScope(shield=True):
        app = running.state
        if app is not None:
            await app.engine.finish_in_flight()
        scope.cancel()  # the lifespan stops the engine (releasing its leases) and closes the store
        with anyio.move_on_after(30):  # exit regardless if the shutdown hangs
            while running.state is not None:
                await anyio.sleep(0.05)
    log.info("stopped; exiting on %s", signal.Signals(signum).name)
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


class _DrainingServer(uvicorn.Server):
    """uvicorn, whose shutdown (on SIGTERM or SIGINT) starts the engine's drain before it closes connections."""

    def __init__(self, config: uvicorn.Config, running: Running) -> None:
        super().__init__(config)
        self.running = running

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _drain(self.running, "shutting down")
        await super().shutdown(sockets)


async def serve_http(mcp: MCPServer, running: Running, host: str, port: int, settings: Settings) -> None:
    """Serve streamable HTTP at ``/mcp`` (and the approval links) until a stop signal."""
    running.on_open = tune_interpreter
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        host=host,
        transport_security=host_checks(host),  # the approval links apply the same Host and Origin checks
        max_request_body_size=settings.max_request_bytes,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=mcp.settings.log_level.lower(),
        # then open streams are closed; runs are unaffected
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_grace_s)),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(trim_memory)
        await _DrainingServer(config, running).serve()
        tg.cancel_scope.cancel()
