"""The one place that turns engine, registry and storage errors into MCP tool errors, and gives every tool error
a text that starts with its error type (``invalid_input: argument options.wait_s: ...``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from patterns import PatternError
from patterns.errors import clip
from registry import NoMatchingVersion, RegistryError, ToolNotFound
from storage import NotFound, StorageError

log = logging.getLogger("podium.server")
ARGUMENT_PROBLEMS_SHOWN = 5
INTERNAL = "internal: unexpected server error; see the server log"


class PodiumToolError(ToolError):
    """A tool error a model can act on: ``type`` is one of the contract's error types."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type


@contextmanager
def tool_errors() -> Iterator[None]:
    """Re-raise Podium's errors as specific tool errors; anything unexpected is logged and reported as internal."""
    try:
        yield
    except PodiumToolError:
        raise
    except PatternError as exc:
        raise PodiumToolError(exc.type, exc.message) from None
    except NotFound as exc:  # the id the caller gave names nothing
        raise PodiumToolError("invalid_input", exc.message) from None
    except RegistryError as exc:
        raise PodiumToolError("unknown_tool", exc.message) from None
    except StorageError as exc:
        log.error("storage error: %s", exc.message)
        raise PodiumToolError("internal", "the run store failed; see the server log") from None
    except Exception:
        log.exception("unexpected error in a tool call")
        raise PodiumToolError("internal", "unexpected server error; see the server log") from None


@contextmanager
def resource_errors() -> Iterator[None]:
    """Resources: a run, gate or tool version that does not exist is ``ResourceNotFoundError`` (the client gets
    invalid params with the message, ``no run with id 'nope'``); another of Podium's errors is a ``ResourceError``
    whose message starts with its type; anything unexpected is left to the SDK, which logs it."""
    try:
        yield
    except (NotFound, ToolNotFound, NoMatchingVersion) as exc:
        raise ResourceNotFoundError(exc.message) from None
    except PatternError as exc:
        raise ResourceError(f"{exc.type}: {exc.message}") from None
    except RegistryError as exc:
        raise ResourceError(f"unknown_tool: {exc.message}") from None
    except StorageError as exc:
        log.error("storage error: %s", exc.message)
        raise ResourceError("internal: the run store failed; see the server log") from None


def argument_problems(exc: ValidationError) -> str:
    """What is wrong with a call's arguments: where and what is allowed, never the values given."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(clip(str(part), 40) for part in error["loc"]) or "(arguments)"
        lines.append(f"argument {where}: {error['msg']}")
    unique = list(dict.fromkeys(lines))
    text = "; ".join(unique[:ARGUMENT_PROBLEMS_SHOWN])
    if len(unique) > ARGUMENT_PROBLEMS_SHOWN:
        text += f"; and {len(unique) - ARGUMENT_PROBLEMS_SHOWN} more"
    return f"invalid_input: {text}"


class PodiumServer(MCPServer):
    """The SDK's server, whose tool errors read ``TYPE: message`` (the contract's error types) rather than
    ``Error executing tool NAME: ...``, with argument errors as ``invalid_input`` naming the argument."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:  # still unexpected: the SDK logs it with its traceback
            raise UnexpectedToolError(INTERNAL) from exc.__cause__
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, PodiumToolError):
                raise ToolError(str(cause)) from cause
            if isinstance(cause, ValidationError):
                raise ToolError(argument_problems(cause)) from cause
            tools = sorted(tool.name for tool in await self.list_tools())
            if name not in tools:
                raise ToolError(
                    f"invalid_input: unknown tool {clip(name, 60)!r}; the tools are {', '.join(tools)}"
                ) from None
            text = str(exc).removeprefix(f"Error executing tool {name}: ")
            raise ToolError(f"invalid_input: {clip(text, 2000)}") from cause
