"""The cheapest MCP server the SDK makes: one tool, ``ping``, over stdio. ``bench/mcp_bench.py`` measures Podium
against it (cold start, and one trivial round trip).

Run::

    python bench/bare_server.py
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

mcp = MCPServer("bare")


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
async def ping() -> str:
    """Answers "pong"."""
    return "pong"


if __name__ == "__main__":
    mcp.run("stdio")
