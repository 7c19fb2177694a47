"""Fixtures for the server: settings over a fresh SQLite file with the test tools in a registry file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server import Settings
from tests.conftest import TEST_TOOLS, tool_spec


def write_registry(path: Path) -> Path:
    tools = [tool_spec(name).model_dump(mode="json", exclude_defaults=True) for name in TEST_TOOLS]
    for tool in tools:
        tool["provider"] = {"type": "python", "target": tool["provider"]["target"]}
        tool.setdefault("version", "1.0.0")
    path.write_text(json.dumps({"tool": tools}))
    return path


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "tools.json")


@pytest.fixture
def settings(tmp_path: Path, registry_file: Path) -> Settings:
    return Settings.load(environ={}, database_url=f"sqlite:///{tmp_path / 'podium.db'}").model_copy(
        update={"registry": (str(registry_file),)}
    )


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """auto: the 2026 protocol dispatched in-process; legacy: 2025-11-25 JSON-RPC over memory streams."""
    return str(request.param)
