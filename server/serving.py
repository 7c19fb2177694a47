"""Serving from a process: stdio or streamable HTTP, and a graceful stop on SIGTERM or SIGINT.

On a stop signal the engine drains at once: it refuses new runs, stops adopting other replicas' runs and starts no
new step, while tool calls in flight get up to ``shutdown_grace_s`` to finish. Callers waiting on a run get their
answer (the run still ``running``) instead of a dropped connection. Then the leases are released, so another
replica resumes the runs at once rather than when their leases expire.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

from server.app import AppState

log = logging.getLogger("podium.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _drain(running: list[AppState], why: str) -> None:
    for app in running:
        if not app.engine.draining:
            grace = app.settings.shutdown_grace_s
            log.info("%s: draining (no new runs or steps; up to %gs for steps in flight)", why, grace)
            app.engine.drain()


async def serve_stdio(mcp: MCPServer, running: list[AppState]) -> None:
    """Serve stdio until the client closes the stream, or until a stop signal arrives: then drain, shut the
    server down, and end the process by that signal (the transport's stdin reader cannot be interrupted)."""
    async with anyio.create_task_group() as tg:
        if sys.platform != "win32":  # anyio has no signal receivers on Windows: there the client ends the server
            tg.start_soon(_stop_on_signal, tg.cancel_scope, running)
        await mcp.run_stdio_async()
        tg.cancel_scope.cancel()


async def _stop_on_signal(scope: anyio.CancelScope, running: list[AppState]) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        signum = await anext(aiter(signals))
    _drain(running, f"received {signal.Signals(signum).name}")
    with anyio.CancelScope(shield=True):
        for app in list(running):
            await app.engine.finish_in_flight()
        scope.cancel()  # the lifespan stops the engine (releasing its leases) and closes the store
        with anyio.move_on_after(30):  # exit regardless if the shutdown hangs
            while running:
                await anyio.sleep(0.05)
    log.info("stopped; exiting on %s", signal.Signals(signum).name)
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


class _DrainingServer(uvicorn.Server):
    """uvicorn, whose shutdown (on SIGTERM or SIGINT) starts the engine's drain before it closes connections."""

    def __init__(self, config: uvicorn.Config, running: list[AppState]) -> None:
        super().__init__(config)
        self.running = running

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _drain(self.running, "shutting down")
        await super().shutdown(sockets)


async def serve_http(mcp: MCPServer, running: list[AppState], host: str, port: int, grace_s: float) -> None:
    """Serve streamable HTTP at ``/mcp`` (and the approval links) until a stop signal."""
    app = mcp.streamable_http_app(streamable_http_path="/mcp", host=host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=mcp.settings.log_level.lower(),
        timeout_graceful_shutdown=max(1, math.ceil(grace_s)),  # then open streams are closed; runs are unaffected
    )
    await _DrainingServer(config, running).serve()
