"""Importing a downstream MCP server: its declaration and each of its tools as ``SERVER.TOOL@version``.

``podium tools import-mcp NAME -- COMMAND ARGS...`` (or ``--url URL``) connects once, lists the tools and publishes
what is new or changed: a tool seen for the first time is ``1.0.0``; one whose schemas changed gets the next major
version, one whose description (or idempotency hint) alone changed the next minor; an unchanged one gets nothing.
Each version pins ``schema_sha256``, which a call checks against the live tool before sending anything. Tools the
server no longer lists are reported; their versions stay published (a call to one fails ``contract_violation``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.types import Tool

from registry.downstream import connect, describe_exception
from registry.errors import InvalidToolSpec, RegistryError
from registry.models import NAME_PATTERN, McpProvider, ToolSpec
from registry.registry import Registry
from registry.semver import Version
from registry.servers import ServerSpec, schema_sha256

MAX_IMPORTED_TOOLS = 500


@dataclass(frozen=True)
class Imported:
    """What an import did to one tool: ``new``, ``schema changed``, ``description changed``, ``unchanged``,
    ``removed`` (no longer listed) or ``skipped`` (with why)."""

    name: str
    change: str
    version: str | None = None
    previous: str | None = None
    detail: str = ""


class ImportFailed(RegistryError):
    """The server could not be reached or listed, or what it listed cannot be imported; nothing was published."""


async def list_live_tools(server: ServerSpec) -> list[Tool]:
    """Connect to ``server`` once and list its tools (every page), within its ``timeout_s``."""
    tools: list[Tool] = []
    try:
        with anyio.fail_after(server.timeout_s):
            async with connect(server.expanded(), read_timeout_seconds=server.timeout_s, cache=None) as client:
                cursor: str | None = None
                while True:
                    listed = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
                    tools.extend(listed.tools)
                    cursor = listed.next_cursor
                    if not cursor or len(tools) > MAX_IMPORTED_TOOLS:
                        break
    except TimeoutError:
        raise ImportFailed(
            f"MCP server {server.name!r} did not list its tools within {server.timeout_s:g}s (timeout_s)"
        ) from None
    except RegistryError:
        raise
    except Exception as exc:  # a command that does not exist, a refused connection, a broken handshake
        raise ImportFailed(f"cannot list the tools of MCP server {server.name!r}: {describe_exception(exc)}") from None
    if len(tools) > MAX_IMPORTED_TOOLS:
        raise ImportFailed(f"MCP server {server.name!r} lists more than {MAX_IMPORTED_TOOLS} tools")
    names = [tool.name for tool in tools]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ImportFailed(
            f"MCP server {server.name!r} lists {', '.join(repr(n) for n in twice)} more than once; a tool name "
            "must be unique, so nothing was imported"
        )
    return tools


async def import_server(registry: Registry, server: ServerSpec) -> list[Imported]:
    """Publish ``server`` and the new or changed versions of its tools. Everything is checked before anything
    is published (a tool whose schema is not valid JSON Schema is reported ``skipped``)."""
    live = await list_live_tools(server)
    plans = [await _plan(registry, server, tool) for tool in live]
    listed = {f"{server.name}.{tool.name}" for tool in live}
    prefix = f"{server.name}."
    gone = sorted({t.name for t in await registry.list_tools() if t.name.startswith(prefix)} - listed)
    plans.extend(
        (None, Imported(name, "removed", detail="no longer listed; its versions stay published")) for name in gone
    )
    await registry.register_server(server)
    specs = [spec for spec, _ in plans if spec is not None]
    await registry.register_all(specs, check_provider=False)
    return [report for _, report in plans]


async def _plan(registry: Registry, server: ServerSpec, tool: Tool) -> tuple[ToolSpec | None, Imported]:
    name = f"{server.name}.{tool.name}"
    digest = schema_sha256(tool.input_schema, tool.output_schema)
    description = (tool.description or tool.title or "")[:4000]
    idempotent = bool(tool.annotations and tool.annotations.idempotent_hint)
    fields: dict[str, Any] = {
        "name": name,
        "description": description,
        "provider": McpProvider(server=server.name, tool=tool.name),
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
        "idempotent": idempotent,
        "timeout_s": server.timeout_s,
        "schema_sha256": digest,
        "tags": ("mcp", server.name),
    }
    try:
        versions = await registry.versions(name)
    except RegistryError:
        versions = []
    latest = versions[0] if versions else None
    if latest is None:
        version, change = "1.0.0", "new"
    elif latest.schema_sha256 != digest:
        version, change = f"{latest.parsed_version.major + 1}.0.0", "schema changed"
    elif latest.description != description or latest.idempotent != idempotent:
        parsed = latest.parsed_version
        version, change = f"{parsed.major}.{parsed.minor + 1}.0", "description changed"
    else:
        return None, Imported(name, "unchanged", latest.version)
    try:
        Version.parse(version)
        spec = ToolSpec.model_validate({**fields, "version": version})
    except (ValueError, InvalidToolSpec) as exc:
        why = " ".join(str(exc).split())[:300]
        if not _valid_name(name):
            why = f"{name!r} is not a valid tool name (letters, digits, '.', '_', '-')"
        return None, Imported(name, "skipped", detail=why)
    return spec, Imported(name, change, version, None if latest is None else latest.version)


def _valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None
