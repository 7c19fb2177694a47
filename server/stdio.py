"""A size limit on requests over stdio, enforced before the MCP transport reads them.

The SDK's stdio transport parses every line it reads, however long: a 17 MB request is parsed in full (seconds of
CPU and over a gigabyte of memory) before anything can refuse it. Serving stdio, Podium puts a filter between the
process's stdin and the transport: a thread copies each line through a pipe, and a line longer than
``max_request_bytes`` is neither kept in memory nor forwarded. In its place the transport gets a one-line request
of the method ``podium/request_too_large`` with the same id, which ``refuse_oversized`` (a server middleware)
answers with a JSON-RPC error, so the client is told instead of waiting forever. (A line whose id cannot be found
in its first 64 KiB is dropped and logged.) HTTP has the same limit from the SDK: 413 for a larger body.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp import MCPError
from mcp.types import INVALID_REQUEST

log = logging.getLogger("podium.server")
OVERSIZED = "podium/request_too_large"
_PREFIX_BYTES = 65_536
# the request's own id: the first "id" member before "params" (the SDK and most clients write it first)
_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,256}"|-?\d{1,19})')


def _request_id(prefix: bytes) -> bytes | None:
    params = prefix.find(b'"params"')
    found = _ID.search(prefix, 0, params if params >= 0 else len(prefix))
    return found.group(1) if found else None


def _refusal(prefix: bytes, size: int, limit: int) -> bytes:
    """The line that stands in for an oversized request: same id, no payload."""
    request_id = _request_id(prefix)
    if request_id is None:
        log.warning("dropped a %d-byte stdio message over the %d-byte limit; it has no id to answer", size, limit)
        return b""
    log.warning("refused a %d-byte stdio request over the %d-byte limit", size, limit)
    params = json.dumps({"bytes": size, "limit": limit}).encode()
    return (
        b'{"jsonrpc":"2.0","id":' + request_id + b',"method":"' + OVERSIZED.encode() + b'","params":' + params + b"}\n"
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _pump(source: int, sink: int, limit: int) -> None:
    """Copy lines from ``source`` to ``sink``; replace each line over ``limit`` bytes by its refusal."""
    try:
        with os.fdopen(source, "rb", buffering=1 << 16) as reader:
            while True:
                line = reader.readline(limit + 2)
                if not line:
                    return
                complete = line.endswith(b"\n")
                size = len(line) - complete
                if size <= limit:
                    _write_all(sink, line if complete else line + b"\n")
                    continue
                prefix = line[:_PREFIX_BYTES]
                while not complete:  # skip the rest of the line without keeping it
                    chunk = reader.readline(1 << 20)
                    if not chunk:
                        break
                    complete = chunk.endswith(b"\n")
                    size += len(chunk) - complete
                _write_all(sink, _refusal(prefix, size, limit))
    except OSError as exc:  # the transport closed the pipe: the server is stopping
        log.debug("stdin filter stopped: %s", exc)
    finally:
        os.close(sink)


@contextmanager
def limited_stdin(max_bytes: int) -> Iterator[None]:
    """While serving stdio, pass fd 0 through the size filter (POSIX; elsewhere stdin is read as it is)."""
    if sys.platform == "win32":
        yield
        return
    source = os.dup(0)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)
    os.close(read_end)
    threading.Thread(target=_pump, args=(source, write_end, max_bytes), name="podium-stdin", daemon=True).start()
    yield


async def refuse_oversized(ctx: Any, call_next: Any) -> Any:
    """Server middleware: answer the stand-in for an oversized request with a JSON-RPC error."""
    if ctx.method == OVERSIZED:
        params = ctx.params or {}
        raise MCPError(
            code=INVALID_REQUEST,
            message=f"request too large: {params.get('bytes')} bytes; this server takes at most "
            f"{params.get('limit')} bytes per request (setting max_request_bytes)",
        )
    return await call_next(ctx)
