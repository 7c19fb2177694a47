"""The stdio transport to a downstream MCP server: a child process in its own process group, JSON-RPC lines on its
stdin and stdout, its stderr to wherever the caller says.

Unlike the SDK's, it reads stdout into one growing buffer and splits lines in place (linear in what arrives, where
joining each chunk to the unfinished line grows quadratically with a long line), and it refuses a message longer
than ``max_message_bytes``: the session ends at once, with ``on_problem`` told why, instead of buffering a server's
50 MB answer. Stopping closes stdin, waits a moment, then signals the whole process group (SIGTERM, then SIGKILL),
so neither the server nor anything it started outlives the session.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import mcp_types
from anyio.abc import Process
from mcp.client.stdio import get_default_environment
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage

log = logging.getLogger("podium.downstream")

EXIT_GRACE_S = 2.0
"""After stdin closes, how long a server has to exit before its process group is signalled."""
TERM_GRACE_S = 2.0
"""After SIGTERM, how long before SIGKILL."""


@asynccontextmanager
async def stdio_transport(
    command: tuple[str, ...],
    *,
    env: dict[str, str],
    cwd: str | None,
    stderr: int,
    max_message_bytes: int,
    on_problem: Callable[[str], None],
) -> AsyncIterator[tuple[Any, Any]]:
    """Start ``command`` and yield the (read, write) streams of its JSON-RPC messages.

    ``stderr``: a file descriptor for the server's stderr. ``on_problem``: called with why the session ended, when
    it was the server's doing (a message too long, output that is not JSON-RPC is only logged)."""
    process = await anyio.open_process(
        list(command), env={**get_default_environment(), **env}, cwd=cwd, stderr=stderr, start_new_session=True
    )
    incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)

    async def read() -> None:
        assert process.stdout is not None
        buffer = bytearray()
        async with incoming_send:
            try:
                async for chunk in process.stdout:
                    buffer += chunk
                    start = 0
                    while (end := buffer.find(b"\n", start)) >= 0:
                        line = bytes(buffer[start:end])
                        start = end + 1
                        if line.strip():
                            await incoming_send.send(_message(line, command[0]))
                    del buffer[:start]
                    if len(buffer) > max_message_bytes:
                        on_problem(f"it sent a message over {max_message_bytes} bytes (max_payload_bytes)")
                        return  # ends the session: its requests fail at once
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                return

    async def write() -> None:
        assert process.stdin is not None
        async with outgoing_receive:
            try:
                async for message in outgoing_receive:
                    text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send((text + "\n").encode())
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await incoming_send.aclose()  # the server stopped reading: end the session

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        group.start_soon(write)
        try:
            yield incoming, outgoing
        finally:
            with anyio.CancelScope(shield=True):
                await outgoing.aclose()
                await _stop(process)
            group.cancel_scope.cancel()


def _message(line: bytes, program: str) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        shown = line[:120].decode("utf-8", "replace")
        log.warning("%s wrote a line on stdout that is not JSON-RPC (ignored): %r", program, shown)
        return exc


async def _stop(process: Process) -> None:
    """Close stdin; give the server ``EXIT_GRACE_S`` to exit; then SIGTERM and SIGKILL its process group."""
    if process.stdin is not None:
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    with anyio.move_on_after(EXIT_GRACE_S):
        while process.returncode is None:
            await anyio.sleep(0.02)
    if sys.platform != "win32":
        await terminate_posix_process_tree(process, TERM_GRACE_S)  # the group, even if the leader has exited
    elif process.returncode is None:  # pragma: no cover - Windows has no process groups here
        process.kill()
    with anyio.move_on_after(1.0), suppress(Exception):
        await process.aclose()  # its pipes, and the wait that reaps it
    transport = getattr(getattr(process, "_process", None), "_transport", None)
    if transport is not None:  # asyncio keeps the pipe transports until the subprocess transport is closed
        with suppress(Exception):
            transport.close()
