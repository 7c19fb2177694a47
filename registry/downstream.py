"""Downstream tools: tools of other MCP servers (``mcp`` provider) and HTTP endpoints (``http`` provider).

An engine owns one ``Downstream`` (``async with``): a session per MCP server, opened on first use and kept open,
and one pooled HTTP client.

- A session lives in a task of its own (the SDK's client must be entered and left in one task); calls from any
  step go through it concurrently. Opening it lists the server's tools; a ``tools/list_changed`` notification
  lists them again. A call to a tool whose pinned ``schema_sha256`` differs from the live one, or that the server
  no longer lists, is refused before anything is sent (``contract_violation``, naming both hashes and the import
  command).
- A session that breaks (its stdio server died, its HTTP session was lost) is dropped; the next call opens a new
  one, at once the first time and after a growing pause if it keeps breaking. A call that found an HTTP session
  gone is sent once more on a new session.
- A stdio server runs in a process group of its own, and the SDK's transport stops it by closing its stdin, then
  SIGTERM, then SIGKILL to the whole group, so no server outlives the engine. Its stderr goes to Podium's log
  (``podium.downstream``), never to Podium's stdout.
- Results: an ``isError`` result is a tool failure (retried per the step's policy); a lost connection or a time-out
  is transient; "invalid params" is permanent. Structured content is the output; else the text, parsed as JSON if
  it is JSON; else ``{"text": ...}``.
- HTTP: the input goes as JSON (as query parameters for GET and DELETE) and the JSON response is the output; 4xx
  except 408 and 429 are permanent, 5xx, 408, 429 and connection errors transient, with ``Retry-After`` passed on.
  A response over ``max_response_bytes`` is refused while it is read.

No credential of Podium's own callers is ever forwarded: a server or endpoint gets the headers and environment of
its own declaration (``${VAR}`` expanded from Podium's environment).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import anyio
import anyio.abc
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, ToolListChangedNotification
from opentelemetry.propagate import inject

from registry.errors import InvalidToolSpec, RegistryError
from registry.models import HttpProvider, McpProvider, ToolSpec
from registry.providers import Invoker
from registry.servers import ServerSpec, expand_text, schema_sha256
from registry.stdio_transport import stdio_transport

log = logging.getLogger("podium.downstream")


class _OneLine(logging.Filter):
    """The SDK logs a whole traceback for each line a stdio server prints that is not JSON-RPC; one line says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


logging.getLogger("mcp.client.stdio").addFilter(_OneLine())


class ServerLookup(Protocol):
    """What ``Downstream`` needs of the registry: a server's declaration by name."""

    async def server(self, name: str) -> ServerSpec: ...


INVALID_PARAMS = -32602
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
STOP_S = 10.0
"""How long closing waits for the sessions (the SDK's transport kills a stdio server within about 4 s)."""
MAX_STDERR_LINE = 4096
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class DownstreamError(Exception):
    """A downstream call failed. ``error_type`` is the step error it becomes; ``permanent`` ones are not retried;
    ``retry_after`` (seconds) is the server's own hint."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "tool_failed",
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.permanent = permanent
        self.retry_after = retry_after


def import_command(server: ServerSpec) -> str:
    """The command that imports ``server``'s tools again (what to run when they drifted)."""
    if server.command is not None:
        return f"podium tools import-mcp {server.name} -- {' '.join(server.command)}"
    headers = "".join(f" --header {k}=..." for k in server.headers)
    return f"podium tools import-mcp {server.name} --url {server.url}{headers}"


@dataclass
class _Session:
    """One open (or opening) session to a server, served by its own task."""

    server: ServerSpec
    failures: int = 0
    client: Client | None = None
    tools: dict[str, str] = field(default_factory=dict)
    """The live tools: name -> schema_sha256."""
    ready: anyio.Event = field(default_factory=anyio.Event)
    wake: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stopping: bool = False
    relist: bool = False
    dead: bool = False
    error: str | None = None
    restart_at: float = 0.0

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    def drop(self, why: str) -> None:
        """The session broke: stop it; the next call opens another."""
        if not self.dead:
            log.warning("MCP server %r: session lost (%s); the next call opens a new one", self.server.name, why)
            self.dead = True
            self.error = why
        self.stop()


class Downstream:
    """Sessions to downstream MCP servers and a pooled HTTP client, for one engine. Use ``async with``."""

    def __init__(self, servers: ServerLookup, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._servers = servers
        self._max_response_bytes = max_response_bytes
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._http: httpx2.AsyncClient | None = None

    async def __aenter__(self) -> Downstream:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._group is not None
        with anyio.CancelScope(shield=True):
            for session in self._sessions.values():
                session.stop()
            with anyio.move_on_after(STOP_S):
                for session in list(self._sessions.values()):
                    await session.done.wait()
            for session in self._sessions.values():
                session.scope.cancel()  # any still opening: the transport still stops its server
            if self._http is not None:
                await self._http.aclose()
        try:
            await self._group.__aexit__(None, None, None)
        finally:
            self._group = None

    def invoker(self, spec: ToolSpec) -> Invoker:
        if isinstance(spec.provider, McpProvider):
            return functools.partial(self._call_mcp, spec, spec.provider)
        if isinstance(spec.provider, HttpProvider):
            return functools.partial(self._call_http, spec, spec.provider)
        raise InvalidToolSpec(f"tool {spec.ref}: a {spec.provider.type} tool is not a downstream tool")

    # -- MCP -----------------------------------------------------------------------------------------------------

    async def _call_mcp(self, spec: ToolSpec, provider: McpProvider, payload: Any) -> Any:
        arguments = payload if isinstance(payload, dict) else {"input": payload}
        for attempt in (1, 2):
            session = await self._session(provider.server)
            _check_drift(spec, provider, session)
            client = session.client
            if client is None:  # lost between opening and now
                continue
            try:
                result = await client.call_tool(provider.tool, arguments, session.server.timeout_s)
            except MCPError as exc:
                if exc.error.code == INVALID_PARAMS:
                    message = f"{provider.server}.{provider.tool} refused the input: {exc}"
                    raise DownstreamError(message, permanent=True) from None
                if session.dead or _session_gone(exc):
                    session.drop(str(exc))
                    if attempt == 1 and session.server.transport == "http":
                        continue  # a lost HTTP session is opened again, once
                raise DownstreamError(f"MCP server {provider.server!r}: {session.error or exc}") from None
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
                session.drop(f"{type(exc).__name__}: {exc}")
                if attempt == 1 and session.server.transport == "http":
                    continue
                raise DownstreamError(f"MCP server {provider.server!r} is unreachable: {session.error}") from None
            return _output(provider, result)
        raise DownstreamError(f"MCP server {provider.server!r}: the session was lost twice in a row")

    async def _session(self, name: str) -> _Session:
        session = self._sessions.get(name)
        if session is not None and session.client is not None and not session.dead:
            return session
        async with self._locks.setdefault(name, anyio.Lock()):
            session = self._sessions.get(name)
            if session is not None and session.client is not None and not session.dead:
                return session
            failures = 0
            if session is not None:  # it broke: open again, after a pause growing with each break in a row
                failures = session.failures + 1
                wait = session.restart_at - time.monotonic()
                if wait > 0:
                    raise DownstreamError(
                        f"MCP server {name!r} is down ({session.error}); it is started again in {wait:.1f}s"
                    )
            if self._group is None:
                raise DownstreamError("the engine is not running, so no downstream session can open")
            try:
                server = (await self._servers.server(name)).expanded()
            except RegistryError as exc:
                raise DownstreamError(exc.message, permanent=True) from None
            session = self._sessions[name] = _Session(server, failures=failures)
            self._group.start_soon(self._serve, session)
            with anyio.move_on_after(server.timeout_s) as timer:
                await session.ready.wait()
            if timer.cancelled_caught:
                session.scope.cancel()
                session.error = f"it did not answer the handshake within {server.timeout_s:g}s"
                session.dead = True
            if session.client is None or session.dead:
                session.restart_at = time.monotonic() + min(RESTART_MAX_S, RESTART_FIRST_S * 2**failures)
                raise DownstreamError(f"cannot open a session to MCP server {name!r}: {session.error}")
            session.failures = 0  # it opened: a later break starts the pauses over
            return session

    async def _serve(self, session: _Session) -> None:
        """The session's task: open it, list the tools, then keep it open until it is stopped."""
        server = session.server

        async def on_message(message: Any) -> None:
            if isinstance(message, ToolListChangedNotification):
                session.relist = True
                session.wake.set()
            elif isinstance(message, Exception):
                log.warning("MCP server %r sent something unreadable: %s", server.name, message)

        try:
            with session.scope:
                async with connect(
                    server,
                    max_message_bytes=4 * self._max_response_bytes + 65_536,  # JSON escapes, content beside structure
                    on_problem=session.drop,
                    read_timeout_seconds=server.timeout_s,
                    message_handler=on_message,
                    cache=None,
                ) as client:
                    session.tools = await _live_tools(client)
                    session.client = client
                    session.ready.set()
                    while not session.stopping:
                        await session.wake.wait()
                        session.wake = anyio.Event()
                        if session.relist and not session.stopping:
                            session.relist = False
                            session.tools = await _live_tools(client)
                            log.info("MCP server %r changed its tools; pinned hashes are checked again", server.name)
        except Exception as exc:  # any failure to open or keep the session: the next call tries again
            session.error = describe_exception(exc)
            if not session.stopping:
                log.warning("MCP server %r: %s", server.name, session.error)
        finally:
            session.client = None
            session.dead = True
            session.ready.set()
            session.done.set()

    # -- HTTP ----------------------------------------------------------------------------------------------------

    async def _call_http(self, spec: ToolSpec, provider: HttpProvider, payload: Any) -> Any:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0, connect=10.0), follow_redirects=False)
        try:
            headers = {k: expand_text(v, f"tool {spec.ref}") for k, v in provider.headers.items()}
        except InvalidToolSpec as exc:
            raise DownstreamError(exc.message, permanent=True) from None
        inject(headers)  # the step's trace context (traceparent), when there is one
        query = provider.method in ("GET", "DELETE")
        request = self._http.build_request(
            provider.method,
            provider.url,
            headers=headers,
            params=payload if query and isinstance(payload, dict) else None,
            json=None if query else payload,
        )
        try:
            response = await self._http.send(request, stream=True)
            try:
                body = await _read_capped(response, self._max_response_bytes, spec.ref)
            finally:
                await response.aclose()
        except httpx2.TimeoutException:
            raise DownstreamError(f"{provider.method} {provider.url} timed out", error_type="timeout") from None
        except httpx2.TransportError as exc:
            raise DownstreamError(f"{provider.method} {provider.url} failed: {describe_exception(exc)}") from None
        status = response.status_code
        if status >= 400:
            detail = body[:300].decode("utf-8", "replace")
            transient = status >= 500 or status in (408, 429)
            raise DownstreamError(
                f"{provider.method} {provider.url} answered {status}: {detail}",
                permanent=not transient,
                retry_after=_retry_after(response.headers.get("retry-after")) if transient else None,
            )
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return {"text": body.decode("utf-8", "replace")}


# -- helpers -------------------------------------------------------------------------------------------------------


def _check_drift(spec: ToolSpec, provider: McpProvider, session: _Session) -> None:
    live = session.tools.get(provider.tool)
    again = import_command(session.server)
    if live is None:
        raise DownstreamError(
            f"{spec.ref}: MCP server {provider.server!r} no longer has a tool {provider.tool!r} (it has "
            f"{', '.join(sorted(session.tools)) or 'none'}); import it again: {again}",
            error_type="contract_violation",
            permanent=True,
        )
    if spec.schema_sha256 is not None and live != spec.schema_sha256:
        raise DownstreamError(
            f"{spec.ref}: {provider.server}.{provider.tool} changed its schemas since it was imported (pinned "
            f"schema_sha256 {spec.schema_sha256[:12]}..., live {live[:12]}...); nothing was sent. Import it again "
            f"to publish the new version: {again}",
            error_type="contract_violation",
            permanent=True,
        )


def _session_gone(exc: MCPError) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("closed", "terminated", "not found", "session", "disconnect"))


def _output(provider: McpProvider, result: CallToolResult) -> Any:
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if result.is_error:
        raise DownstreamError(f"{provider.server}.{provider.tool} failed: {' '.join(texts)[:2000] or 'no message'}")
    if result.structured_content is not None:
        return result.structured_content
    if len(texts) == 1:
        try:
            return json.loads(texts[0])
        except ValueError:
            return {"text": texts[0]}
    if texts:
        return {"text": "\n".join(texts)}
    return {"content": [block.model_dump(mode="json", by_alias=True) for block in result.content]}


async def _live_tools(client: Client) -> dict[str, str]:
    tools: dict[str, str] = {}
    cursor: str | None = None
    while True:
        listed = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
        for tool in listed.tools:
            tools[tool.name] = schema_sha256(tool.input_schema, tool.output_schema)
        cursor = listed.next_cursor
        if not cursor:
            return tools


@asynccontextmanager
async def connect(
    server: ServerSpec,
    *,
    max_message_bytes: int = 4 * DEFAULT_MAX_RESPONSE_BYTES,
    on_problem: Callable[[str], None] = lambda why: None,
    **options: Any,
) -> AsyncIterator[Client]:
    """An open ``Client`` session to ``server`` (``${VAR}`` already expanded): stdio (``registry.stdio_transport``,
    its stderr piped to Podium's log, no message over ``max_message_bytes``) or streamable HTTP with the server's own
    headers. ``options`` go to ``Client``."""
    if server.url is not None:
        timeout = httpx2.Timeout(server.timeout_s, connect=min(10.0, server.timeout_s))
        async with httpx2.AsyncClient(headers=server.headers, timeout=timeout) as http:
            transport = streamable_http_client(server.url, http_client=http)
            async with Client(transport, mode=server.mode, **options) as client:
                yield client
        return
    assert server.command is not None
    with _StderrToLog(server.name) as errlog:
        transport = stdio_transport(
            server.command,
            env=dict(server.env),
            cwd=server.cwd,
            stderr=errlog.writer.fileno(),
            max_message_bytes=max_message_bytes,
            on_problem=on_problem,
        )
        async with Client(transport, mode=server.mode, **options) as client:
            errlog.spawned()
            yield client


class _StderrToLog:
    """A pipe for a stdio server's stderr, read by a thread that logs each line (cut at ``MAX_STDERR_LINE``)."""

    def __init__(self, name: str) -> None:
        read_fd, write_fd = os.pipe()
        self.writer: TextIO = os.fdopen(write_fd, "w")
        self._reader = os.fdopen(read_fd, "rb")
        self._name = name
        self._thread = threading.Thread(target=self._pump, name=f"podium-stderr-{name}", daemon=True)

    def __enter__(self) -> _StderrToLog:
        self._thread.start()
        return self

    def spawned(self) -> None:
        """The server holds its copy of the pipe: close ours, so the reader ends when the server does."""
        if not self.writer.closed:
            self.writer.close()

    def __exit__(self, *exc_info: object) -> None:
        self.spawned()

    def _pump(self) -> None:
        with self._reader:
            for raw in self._reader:
                line = raw[:MAX_STDERR_LINE].decode("utf-8", "replace").rstrip()
                if line:
                    log.info("[%s] %s", self._name, line)


async def _read_capped(response: httpx2.Response, limit: int, ref: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise DownstreamError(
                f"{ref}: the response is over {limit} bytes (max_payload_bytes); it was not read", permanent=True
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the policy's own delay stands


def describe_exception(exc: BaseException) -> str:
    """One line for an exception, looking inside exception groups (task groups wrap what failed)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
