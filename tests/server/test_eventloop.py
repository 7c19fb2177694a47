"""The event loop of the ``podium`` commands (``event_loop``): uvloop where installed, the standard loop on request,
a clear error when uvloop is required and missing; ``podium serve`` over stdio runs sync tools on both."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from server.config import ConfigError, Settings
from server.eventloop import loop_options, running_loop_name
from tests.helpers import PODIUM, REPO, podium, serve_args, server_env

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
needs_uvloop = pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed here (Windows, or not CPython)")


async def _loop_name() -> str:
    return running_loop_name()


@needs_uvloop
def test_auto_and_uvloop_run_on_uvloop() -> None:
    assert anyio.run(_loop_name, backend_options=loop_options("auto")) == "uvloop"
    assert anyio.run(_loop_name, backend_options=loop_options("uvloop")) == "uvloop"


def test_asyncio_runs_on_the_standard_loop() -> None:
    assert loop_options("asyncio") == {}
    assert anyio.run(_loop_name, backend_options=loop_options("asyncio")) == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an interpreter without uvloop sees: ImportError
    assert loop_options("auto") == {}
    with pytest.raises(ConfigError) as refused:
        loop_options("uvloop")
    assert "uvloop cannot be imported" in str(refused.value) and "'auto' or 'asyncio'" in str(refused.value)


def test_the_setting_comes_from_the_environment_and_a_bad_value_names_the_allowed_ones(tmp_path: Path) -> None:
    assert Settings.load(environ={"PODIUM_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert Settings.load(environ={}).event_loop == "auto"
    done = podium("runs", "list", "--db", f"sqlite:///{tmp_path / 'p.db'}", env={"PODIUM_EVENT_LOOP": "trio"})
    assert done.returncode == 2
    assert "event_loop" in done.stderr and "'auto', 'uvloop' or 'asyncio'" in done.stderr, done.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("choice", ["auto", "asyncio"])
async def test_serve_over_stdio_runs_a_chain_of_sync_tools_on_the_chosen_loop(
    tmp_path: Path, registry_file: Path, choice: str
) -> None:
    env = {**server_env(), "PODIUM_EVENT_LOOP": choice}
    params = StdioServerParameters(command=PODIUM, args=serve_args(tmp_path, registry_file), env=env, cwd=REPO)
    log = tmp_path / "stderr.txt"
    steps = [{"tool": "classify", "input": {"text": "refund for a double charge"}}, {"tool": "echo"}] * 5
    with log.open("w") as errlog, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=errlog)) as client:
            done = await client.call_tool("run_chain", {"steps": steps, "input": {}})
    run = done.structured_content
    assert run is not None and run["status"] == "succeeded", done.content
    assert run["usage"]["steps"] == 10 and run["output"]["category"] == "billing"
    expected = "uvloop" if choice == "auto" and HAS_UVLOOP else "asyncio"
    assert f"on {expected}" in log.read_text(), log.read_text()
