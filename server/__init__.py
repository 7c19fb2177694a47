"""The MCP server, the ``podium`` CLI and settings."""

from server.app import build_server
from server.config import ConfigError, Settings, default_database_url
from server.errors import PodiumToolError, tool_errors
from server.lifespan import AppState, Running

__all__ = [
    "AppState",
    "ConfigError",
    "PodiumToolError",
    "Running",
    "Settings",
    "build_server",
    "default_database_url",
    "tool_errors",
]
