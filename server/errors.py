"""The one place that turns engine, registry and storage errors into MCP tool errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from patterns import PatternError
from registry import RegistryError
from storage import RunNotFound, StorageError

log = logging.getLogger("podium.server")


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
    except RunNotFound as exc:
        raise PodiumToolError("invalid_input", exc.message) from None
    except RegistryError as exc:
        raise PodiumToolError("unknown_tool", exc.message) from None
    except StorageError as exc:
        log.error("storage error: %s", exc.message)
        raise PodiumToolError("internal", "the run store failed; see the server log") from None
    except Exception:
        log.exception("unexpected error in a tool call")
        raise PodiumToolError("internal", "unexpected server error; see the server log") from None
