"""A real downstream MCP server for the tests, with misbehaviours to choose from.

    python -m tests.mcp_server [--v2] [--ignore-sigterm] [--garbage] [--hang] [--pid-file F] [--calls-file F]
                               [--http PORT]

- tools: ``add`` (structured output, idempotent), ``echo`` (text), ``fail`` (an ``isError`` result), ``big``
  (a text result of ``size`` bytes), ``slow`` (sleeps), ``shout`` (stderr line, then text), ``upgrade`` (replaces
  ``add`` with another schema and sends ``tools/list_changed``);
- ``--v2``: ``add`` takes a third number (its schema changes, so an imported ``add`` drifts); ``--describe``:
  ``echo`` says what it does in other words (only its description changes);
- ``--ignore-sigterm``: a server that must be killed; ``--garbage``: prints a non-JSON line on stdout first;
- ``--hang``: never answers the handshake; ``--duplicate``: a low-level server listing ``add`` twice;
- ``--pid-file``: writes its pid; ``--calls-file``: appends each call;
- ``--http PORT``: serves streamable HTTP on 127.0.0.1 instead of stdio.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def build(v2: bool, calls_file: str | None, describe: bool = False) -> MCPServer:
    server = MCPServer("podium-test-downstream", version="1.0.0")

    def called(name: str) -> None:
        if calls_file:
            with open(calls_file, "a") as f:
                f.write(name + "\n")

    if v2:

        @server.tool(annotations=ToolAnnotations(idempotent_hint=True))
        def add(a: float, b: float, c: float = 0) -> dict[str, Any]:
            """Add numbers."""
            called("add")
            return {"sum": a + b + c}

    else:

        @server.tool(annotations=ToolAnnotations(idempotent_hint=True))
        def add(a: float, b: float) -> dict[str, Any]:  # type: ignore[misc]  # the other version of add
            """Add two numbers."""
            called("add")
            return {"sum": a + b}

    @server.tool(description="Say it back, word for word." if describe else "Say it back.")
    def echo(text: str) -> str:
        called("echo")
        return text

    @server.tool()
    def fail(message: str = "it went wrong") -> str:
        """Always fails."""
        called("fail")
        raise ToolError(message)

    @server.tool()
    def big(size: int) -> str:
        """A text of `size` bytes."""
        called("big")
        return "x" * size

    @server.tool(annotations=ToolAnnotations(idempotent_hint=True))
    def trace_id() -> str:
        """The trace the call arrived in (from the `traceparent` in its `_meta`), or none."""
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else "none"

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answers after `seconds`."""
        import anyio

        called("slow")
        await anyio.sleep(seconds)
        return "done"

    @server.tool()
    async def upgrade(ctx: Context) -> str:
        """Replaces ``add`` with a three-number version and tells the client its tools changed."""
        called("upgrade")
        server.remove_tool("add")

        def add(a: float, b: float, c: float = 0) -> dict[str, Any]:
            """Add numbers."""
            called("add")
            return {"sum": a + b + c}

        server.add_tool(add, annotations=ToolAnnotations(idempotent_hint=True))
        await ctx.session.send_tool_list_changed()
        return "upgraded"

    @server.tool()
    def shout(text: str) -> str:
        """Writes `text` to stderr, then answers."""
        called("shout")
        print(f"SHOUT {text}", file=sys.stderr, flush=True)
        return text.upper()

    return server


async def serve_duplicates() -> None:
    """A low-level server whose tool list names ``add`` twice (what ``MCPServer`` would never do)."""
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    schema = {"type": "object", "properties": {"a": {"type": "number"}}}
    tools = [types.Tool(name="add", input_schema=schema), types.Tool(name="add", input_schema=schema)]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    server = Server("duplicates", on_list_tools=list_tools)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--v2", action="store_true")
    parser.add_argument("--describe", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--garbage", action="store_true")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--duplicate", action="store_true")
    parser.add_argument("--pid-file")
    parser.add_argument("--calls-file")
    parser.add_argument("--http", type=int)
    args = parser.parse_args()
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(str(os.getpid()))
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.hang:
        while True:
            time.sleep(3600)
    if args.duplicate:
        import anyio

        anyio.run(serve_duplicates)
        return
    if args.garbage:
        print("this is not JSON-RPC", flush=True)
    server = build(args.v2, args.calls_file, args.describe)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()
