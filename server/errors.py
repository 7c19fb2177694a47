"""The one place that turns engine, registry and storage errors into MCP tool and resource errors, each a text
that starts with its error type (``invalid_input: argument options.wait_s: ...``)."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
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


def argument_problems(exc: ValidationError, schema: dict[str, Any] | None = None) -> str:
    """What is wrong with a call's arguments: where and what is allowed, never the values given. With the tool's
    input ``schema``, an unknown argument is answered with the closest valid name (``did you mean wait_s?``)."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(clip(str(part), 40) for part in error["loc"]) or "(arguments)"
        line = f"argument {where}: {error['msg']}"
        if error["type"] == "extra_forbidden" and schema is not None and error["loc"]:
            allowed = _properties_at(schema, tuple(error["loc"][:-1]))
            guess = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1, cutoff=0.5)
            line += f"; did you mean {guess[0]}?" if guess else f" (allowed: {', '.join(allowed)})"
        lines.append(line)
    unique = list(dict.fromkeys(lines))
    text = "; ".join(unique[:ARGUMENT_PROBLEMS_SHOWN])
    if len(unique) > ARGUMENT_PROBLEMS_SHOWN:
        text += f"; and {len(unique) - ARGUMENT_PROBLEMS_SHOWN} more"
    return f"invalid_input: {text}"


def unknown_arguments(tool: str, unknown: list[str], allowed: list[str]) -> str:
    """A call that names arguments ``tool`` does not take: each, with the closest valid name or the valid ones."""
    lines = []
    for key in unknown[:ARGUMENT_PROBLEMS_SHOWN]:
        guess = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
        hint = f"did you mean {guess[0]}?" if guess else f"{tool} takes {', '.join(allowed)}"
        lines.append(f"argument {clip(key, 40)}: unknown argument; {hint}")
    more = f"; and {len(unknown) - ARGUMENT_PROBLEMS_SHOWN} more" if len(unknown) > ARGUMENT_PROBLEMS_SHOWN else ""
    return f"invalid_input: {'; '.join(lines)}{more}"


def _properties_at(schema: dict[str, Any], loc: tuple[int | str, ...]) -> list[str]:
    """The property names of the object at ``loc`` in an input schema, following ``$ref`` and ``anyOf``."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> dict[str, Any]:
        while isinstance(node, dict):
            if "$ref" in node:
                node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
            elif "anyOf" in node:
                node = next((o for o in node["anyOf"] if isinstance(o, dict) and o.get("type") != "null"), {})
            else:
                return node
        return {}

    node = resolve(schema)
    for part in loc:
        node = resolve(node.get("properties", {}).get(str(part), {}))
    return list(node.get("properties", {}))
