"""Podium's MCP server: the SDK's ``MCPServer`` with the texts and sizes Podium's contract asks for.

- Tool errors read ``TYPE: message`` (the contract's error types), not ``Error executing tool NAME: ...``;
  argument errors are ``invalid_input`` naming the argument and what is allowed (and, for an unknown one, the
  closest valid name); an unknown tool is ``invalid_input`` naming the closest (or, if none is close, listing them).
- ``tools/list`` is compact: schemas carry no ``title``s, output schemas no descriptions (the tool's description
  says what it returns), and the RunResult schema is declared once, on ``get_run``; the other tools that return a
  RunResult say so in their description.
- Results carry their data twice, as MCP asks (structured, and as text for clients that read only text): the text
  is compact JSON, not indented (``reply``).
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult, SetLevelRequestParams, TextContent, Tool as MCPTool
from pydantic import BaseModel, ValidationError

from patterns.errors import clip
from registry.errors import closest
from server import logs
from server.errors import INTERNAL, PodiumToolError, argument_problems, unknown_arguments


def compact(model: BaseModel) -> str:
    """A result as compact JSON text."""
    return model.model_dump_json()


def reply(model: BaseModel) -> CallToolResult:
    """A tool's result: the model as structured content, and the same as compact JSON text."""
    return CallToolResult(
        content=[TextContent(type="text", text=compact(model))], structured_content=model.model_dump(mode="json")
    )


def _compact(schema: Any, *, inputs: bool) -> Any:
    """A JSON Schema as short as it can be for a reader: no ``title`` keywords; for ``inputs``, an optional argument
    written as its type (``{"type": "integer"}``) rather than ``{"anyOf": [{"type": "integer"}, {"type": "null"}],
    "default": null}`` (leaving it out is what a caller does); for outputs, no ``description`` keywords (the tool's
    description says what it returns).

    Only keywords go: a property *named* title or description is a schema (an object), not a string."""
    if isinstance(schema, dict):
        node = {
            key: _compact(value, inputs=inputs)
            for key, value in schema.items()
            if not (isinstance(value, str) and (key == "title" or (key == "description" and not inputs)))
        }
        options = node.get("anyOf")
        if (
            inputs
            and isinstance(options, list)
            and len(options) == 2
            and {"type": "null"} in options
            and "default" in node
        ):
            if node["default"] is None:
                (kept,) = [o for o in options if o != {"type": "null"}]
                node = {**{k: v for k, v in node.items() if k not in ("anyOf", "default")}, **kept}
        return node
    if isinstance(schema, list):
        return [_compact(item, inputs=inputs) for item in schema]
    return schema


class PodiumServer(MCPServer):
    """The SDK's server, whose tool errors read ``TYPE: message`` (the contract's error types) rather than
    ``Error executing tool NAME: ...``, with argument errors as ``invalid_input`` naming the argument, and which
    accepts ``logging/setLevel`` (``server.logs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arguments: dict[str, list[str]] | None = None  # each tool's argument names, once listed
        # the SDK offers logging/setLevel only as a (deprecated) constructor argument of its low-level server
        self._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, logs.set_level)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if self._arguments is None:
            self._arguments = {
                tool.name: list(tool.input_schema.get("properties", {})) for tool in await super().list_tools()
            }
        allowed = self._arguments.get(name)
        unknown = [key for key in arguments if allowed is not None and key not in allowed]
        if unknown:  # the SDK would ignore them: a model that passed one must learn that it had no effect
            raise ToolError(unknown_arguments(name, unknown, allowed or []))
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:  # still unexpected: the SDK logs it with its traceback
            raise UnexpectedToolError(INTERNAL) from exc.__cause__
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, PodiumToolError):
                raise ToolError(str(cause)) from cause
            if isinstance(cause, ValidationError):
                schema = next((t.input_schema for t in await super().list_tools() if t.name == name), None)
                raise ToolError(argument_problems(cause, schema)) from cause
            tools = sorted(tool.name for tool in await self.list_tools())
            if name not in tools:
                like = " or ".join(repr(t) for t in closest(name, tools))
                hint = f"did you mean {like}?" if like else f"the tools: {', '.join(tools)}"
                raise ToolError(f"invalid_input: unknown tool {clip(name, 60)!r}; {hint}") from None
            text = str(exc).removeprefix(f"Error executing tool {name}: ")
            raise ToolError(f"invalid_input: {clip(text, 2000)}") from cause

    async def list_tools(self) -> list[MCPTool]:
        tools = await super().list_tools()
        return [
            tool.model_copy(
                update={
                    "input_schema": _compact(tool.input_schema, inputs=True),
                    "output_schema": None if tool.output_schema is None else _compact(tool.output_schema, inputs=False),
                }
            )
            for tool in tools
        ]
