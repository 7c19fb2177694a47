"""Start-up over stdio: `podium serve` answers `initialize` and `tools/list` while it opens its store in the
background, requests that need the store wait for it, and a store or registry that cannot open ends the process
with the reason, as any failing command does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from server import Settings
from server.app import build_server
from tests.helpers import PODIUM, REPO, serve_args, server_env

pytestmark = pytest.mark.anyio


def test_what_answers_initialize_and_tools_list_loads_no_sqlalchemy() -> None:
    """The modules `podium serve` imports before it answers; SQLAlchemy (a fifth of a second) loads afterwards."""
    probe = (
        "import sys\n"
        "import server.app, server.cli, server.lifespan, server.serving\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('sqlalchemy', 'aiosqlite', 'asyncpg')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=server_env(), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_calls_made_as_soon_as_the_server_answers_wait_for_its_store(tmp_path: Path, registry_file: Path) -> None:
    params = StdioServerParameters(command=PODIUM, args=serve_args(tmp_path, registry_file), env=server_env(), cwd=REPO)
    with anyio.fail_after(60):
        async with Client(params) as client:
            listed = await client.list_tools()
            async with anyio.create_task_group() as tg:  # all sent at once, before the store can have opened

                async def chain(n: int) -> None:
                    done = await client.call_tool("run_chain", {"steps": [{"tool": "add"}], "input": {"a": n, "b": 1}})
                    assert done.structured_content is not None, done.content
                    assert done.structured_content["output"] == {"sum": n + 1}

                for n in range(5):
                    tg.start_soon(chain, n)
            runs = await client.call_tool("list_runs", {})
    assert "run_chain" in {tool.name for tool in listed.tools}
    assert runs.structured_content is not None and len(runs.structured_content["runs"]) == 5


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_server_opening_in_the_background_serves_in_process(settings: Settings, mode: str) -> None:
    server = build_server(settings, background=True)
    async with Client(server, mode=mode) as client:
        done = await client.call_tool("run_chain", {"steps": [{"tool": "add"}], "input": {"a": 2, "b": 3}})
        found = await client.call_tool("find_tools", {"query": "add"})
    assert done.structured_content is not None and done.structured_content["output"] == {"sum": 5}
    assert not found.is_error, found.content


def ended(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run ``podium serve`` with its stdin left open (the server must not wait for its client to go); its exit
    status and stderr."""
    log = tmp_path / "stderr.txt"
    with (
        log.open("w") as stderr_file,
        subprocess.Popen(
            [PODIUM, "serve", *args],
            env=server_env(),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
        ) as process,
    ):
        try:
            status = process.wait(timeout=60)
        finally:
            process.kill()
    return status, log.read_text()


def test_a_registry_file_that_cannot_load_is_refused_before_any_answer(tmp_path: Path) -> None:
    bad = tmp_path / "tools.json"
    bad.write_text('{"tool": [{"name": "extract"}]}')
    status, stderr = ended(tmp_path, "--db", str(tmp_path / "p.db"), "--registry", str(bad))
    assert status == 2, stderr
    assert f"podium: {bad}" in stderr and "version: Field required" in stderr and "provider: Field required" in stderr
    assert "Traceback" not in stderr


def test_a_store_that_cannot_open_in_the_background_ends_the_server_with_the_reason(tmp_path: Path) -> None:
    """The database opens after the client was answered; the process still ends at once, as a failing command."""
    (tmp_path / "a-file").write_text("")
    status, stderr = ended(tmp_path, "--db", str(tmp_path / "a-file" / "p.db"))
    assert status == 2, stderr
    assert "podium: the database failed:" in stderr and "a-file" in stderr
    assert "Traceback" not in stderr
