"""Downstream MCP servers as registry tools, against a real server (``tests.mcp_server``) over stdio and HTTP, in
both protocol eras: import, calls through the engine, drift, pooling, restarts, stderr, and misbehaving servers."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from patterns import Engine, Limits
from registry import Registry, ToolSpec
from registry.mcp_import import ImportFailed, import_server
from registry.servers import ServerSpec
from storage import Store
from tests.helpers import REPO, free_port, podium

pytestmark = pytest.mark.anyio

SERVER = (sys.executable, "-m", "tests.mcp_server")


def stdio(name: str = "calc", *args: str, mode: str = "auto", **fields: Any) -> ServerSpec:
    return ServerSpec.model_validate(
        {"name": name, "command": [*SERVER, *args], "cwd": str(REPO), "mode": mode, "timeout_s": 20, **fields}
    )


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def engine(store: Store, registry: Registry, limits: Limits) -> AsyncIterator[Engine]:
    async with Engine(store, registry, limits) as running:
        yield running


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is not alive
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


async def test_importing_publishes_each_tool_and_importing_again_only_what_changed(registry: Registry) -> None:
    first = await import_server(registry, stdio())
    again = await import_server(registry, stdio())
    described = await import_server(registry, stdio("calc", "--describe"))
    changed = await import_server(registry, stdio("calc", "--v2"))
    assert {(r.name, r.change, r.version) for r in first} >= {
        ("calc.add", "new", "1.0.0"),
        ("calc.echo", "new", "1.0.0"),
    }
    assert {r.change for r in again} == {"unchanged"}
    assert [(r.name, r.version, r.previous) for r in described if r.change == "description changed"] == [
        ("calc.echo", "1.1.0", "1.0.0")
    ]
    assert [(r.name, r.version) for r in changed if r.change == "schema changed"] == [("calc.add", "2.0.0")]
    add = await registry.get("calc.add", "1.0.0")
    assert add.idempotent is True and add.schema_sha256 is not None and add.provider.type == "mcp"
    assert (await registry.get("calc.echo", "1.0.0")).idempotent is False  # no idempotentHint
    assert (await registry.server("calc")).command == (*SERVER, "--v2")  # the last import's


async def test_an_engine_calls_imported_tools_on_one_pooled_session(
    engine: Engine, registry: Registry, tmp_path: Path, mode: str
) -> None:
    pid_file = tmp_path / "pid"
    await import_server(registry, stdio("calc", "--pid-file", str(pid_file), mode=mode))
    first_pid = pid_file.read_text()
    run = await engine.run(
        {
            "chain": [{"tool": "calc.add", "input": {"a": 1, "b": 2}}] * 20
            + [{"tool": "calc.echo", "input": {"text": "hi"}}]
        },
        {},
    )
    assert run.status == "succeeded", run.error
    assert run.output == {"result": "hi"}
    steps = await engine.steps(run.id)
    assert steps[1].output == {"sum": 3.0} and steps[1].version == "1.0.0"
    assert pid_file.read_text() != first_pid  # the engine started its own server (the import's has stopped) ...
    served_by = pid_file.read_text()
    again = await engine.run({"tool": "calc.add", "input": {"a": 2, "b": 2}}, {})
    assert again.output == {"sum": 4.0} and pid_file.read_text() == served_by  # ... once, for every call


async def test_a_failing_tool_is_a_step_failure_retried_per_policy(engine: Engine, registry: Registry, tmp_path: Path):
    calls = tmp_path / "calls"
    await import_server(registry, stdio("calc", "--calls-file", str(calls)))
    step = {
        "tool": "calc.fail",
        "input": {"message": "the ledger is closed"},
        "retry": {"max_attempts": 2, "initial_s": 0},
    }
    run = await engine.run(step, {})
    assert run.status == "failed" and run.error is not None and run.error["type"] == "tool_failed"
    assert "calc.fail failed: Error executing tool fail: the ledger is closed" in run.error["message"]
    assert calls.read_text().split() == ["fail", "fail"]


async def test_a_tool_whose_schemas_changed_is_refused_without_calling_it(
    store: Store, registry: Registry, limits: Limits, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    await import_server(registry, stdio("calc", "--calls-file", str(calls)))
    await registry.register_server(stdio("calc", "--v2", "--calls-file", str(calls)))  # the server was upgraded
    calls.write_text("")
    async with Engine(store, registry, limits) as engine:
        run = await engine.run({"tool": "calc.add@1", "input": {"a": 1, "b": 2}}, {})
        echoed = await engine.run({"tool": "calc.echo", "input": {"text": "still here"}}, {})
    assert run.status == "failed" and run.error is not None and run.error["type"] == "contract_violation"
    message = run.error["message"]
    assert "calc.add changed its schemas since it was imported (pinned schema_sha256" in message
    assert "nothing was sent" in message and "podium tools import-mcp calc -- " in message
    assert echoed.status == "succeeded"  # the other tools still work
    assert calls.read_text().split() == ["echo"]  # add was never called


async def test_stderr_goes_to_the_log_and_the_server_is_stopped_even_if_it_ignores_sigterm(
    store: Store, registry: Registry, limits: Limits, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "pid"
    await registry.register_server(stdio("calc", "--ignore-sigterm", "--pid-file", str(pid_file)))
    await import_server(registry, stdio("calc", "--ignore-sigterm", "--pid-file", str(pid_file)))
    caplog.set_level(logging.INFO, logger="podium.downstream")
    async with Engine(store, registry, limits) as engine:
        run = await engine.run({"tool": "calc.shout", "input": {"text": "hello"}}, {})
        pid = int(pid_file.read_text())
        assert alive(pid)
    assert run.output == {"result": "HELLO"}
    with anyio.fail_after(10):
        while alive(pid):  # killed with its process group when the engine stopped
            await anyio.sleep(0.05)
    assert any("[calc] SHOUT hello" in r.getMessage() for r in caplog.records if r.name == "podium.downstream")


async def test_a_server_that_died_is_started_again(engine: Engine, registry: Registry, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    await import_server(registry, stdio("calc", "--pid-file", str(pid_file)))
    assert (await engine.run({"tool": "calc.add", "input": {"a": 1, "b": 1}}, {})).status == "succeeded"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    dead = int(pid_file.read_text())
    retried = {"tool": "calc.add", "input": {"a": 2, "b": 3}, "retry": {"max_attempts": 4, "initial_s": 0.6}}
    run = await engine.run(retried, {})
    assert run.status == "succeeded", run.error
    assert run.output == {"sum": 5.0} and int(pid_file.read_text()) != dead


async def test_servers_that_cannot_serve_fail_the_step_in_bounded_time(engine: Engine, registry: Registry) -> None:
    cases = {
        "missing": ServerSpec(name="missing", command=("/no/such/server",), timeout_s=5),
        "hangs": stdio("hangs", "--hang", timeout_s=1),
    }
    for name, server in cases.items():
        await registry.register_server(server)
        await registry.register(bare_tool(name))
    started = time.monotonic()
    missing = await engine.run({"tool": "missing.t"}, {})
    hangs = await engine.run({"tool": "hangs.t"}, {})
    assert time.monotonic() - started < 15
    assert missing.status == "failed" and missing.error is not None
    assert "cannot open a session to MCP server 'missing': FileNotFoundError" in missing.error["message"]
    assert hangs.status == "failed" and hangs.error is not None
    assert "it did not answer the handshake within 1s" in hangs.error["message"]


def bare_tool(server: str) -> ToolSpec:
    """A tool ``SERVER.t`` declared by hand (not imported: no pinned hash)."""
    return ToolSpec.model_validate(
        {"name": f"{server}.t", "version": "1.0.0", "provider": {"type": "mcp", "server": server, "tool": "t"}}
    )


async def test_a_result_over_max_payload_bytes_fails_the_step(store: Store, registry: Registry) -> None:
    await import_server(registry, stdio())
    async with Engine(store, registry, Limits(max_payload_bytes=1_000_000)) as engine:
        run = await engine.run({"tool": "calc.big", "input": {"size": 50_000_000}}, {})
    assert run.status == "failed" and run.error is not None
    assert "it sent a message over 4065536 bytes (max_payload_bytes)" in run.error["message"]


async def test_importing_refuses_what_cannot_be_imported(registry: Registry) -> None:
    with pytest.raises(ImportFailed, match="cannot list the tools of MCP server 'gone': FileNotFoundError"):
        await import_server(registry, ServerSpec(name="gone", command=("/no/such/server",)))
    with pytest.raises(ImportFailed, match=r"MCP server 'slow' did not list its tools within 1s \(timeout_s\)"):
        await import_server(registry, stdio("slow", "--hang", timeout_s=1))
    with pytest.raises(ImportFailed, match="cannot list the tools of MCP server 'far'"):
        await import_server(registry, ServerSpec(name="far", url="http://127.0.0.1:1/mcp", timeout_s=3))
    with pytest.raises(ImportFailed, match="MCP server 'twice' lists 'add' more than once; a tool name must be unique"):
        await import_server(registry, stdio("twice", "--duplicate", mode="legacy"))
    garbage = await import_server(registry, stdio("noisy", "--garbage"))  # a stray line is skipped, not fatal
    assert {r.change for r in garbage} == {"new"}
    assert await registry.list_servers() == [await registry.server("noisy")]


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the test MCP server did not start") from None
            time.sleep(0.05)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    calls = tmp_path / "calls"
    process = subprocess.Popen(
        [*SERVER, "--http", str(port), "--calls-file", str(calls)], cwd=REPO, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_for_port(port, process)
        yield url, calls
    finally:
        process.kill()
        process.wait()


async def test_an_http_server_is_imported_and_called(
    engine: Engine, registry: Registry, http_server: tuple[str, Path], mode: str
) -> None:
    url, calls = http_server
    server = ServerSpec(name="remote", url=url, mode=mode, headers={"X-Team": "${PODIUM_TEST_TEAM}"}, timeout_s=10)
    os.environ["PODIUM_TEST_TEAM"] = "payments"
    try:
        reports = await import_server(registry, server)
        run = await engine.run({"chain": [{"tool": "remote.add", "input": {"a": 4, "b": 5}}] * 3}, {})
    finally:
        del os.environ["PODIUM_TEST_TEAM"]
    assert {r.name for r in reports} >= {"remote.add", "remote.echo"}
    assert run.status == "succeeded" and run.output == {"sum": 9.0}
    assert calls.read_text().split() == ["add"] * 3
    assert (await registry.server("remote")).headers == {"X-Team": "${PODIUM_TEST_TEAM}"}  # stored unexpanded


def test_the_cli_imports_a_server_reports_changes_deprecates_and_lists_breakers(tmp_path: Path) -> None:
    db = str(tmp_path / "podium.db")
    server = [*SERVER]
    first = podium("tools", "import-mcp", "calc", "--cwd", str(REPO), "--db", db, "--", *server)
    again = podium("tools", "import-mcp", "calc", "--json", "--db", db, "--", *server, "--v2")
    deprecated = podium("tools", "deprecate", "calc.add@1.0.0", "--db", db)
    shown = podium("tools", "show", "calc.add@^1", "--db", db)
    nothing = podium("breakers", "list", "--db", db)
    reset = podium("breakers", "reset", "calc.add@2", "--db", db)
    bad = podium("tools", "import-mcp", "calc", "--db", db)
    assert first.returncode == 0, first.stderr
    assert "MCP server calc (stdio): 8 tool(s)" in first.stdout and "calc.add@1.0.0: new" in first.stdout
    changes = {t["name"]: t for t in json.loads(again.stdout)["tools"]}
    assert changes["calc.add"]["change"] == "schema changed" and changes["calc.add"]["version"] == "2.0.0"
    assert changes["calc.echo"]["change"] == "unchanged"
    assert deprecated.returncode == 0 and "calc.add@1.0.0: deprecated" in deprecated.stdout
    assert shown.returncode != 0 and "deprecated" in shown.stderr  # a range skips the deprecated version
    assert "no breaker has opened yet" in nothing.stdout
    assert reset.returncode == 0 and "calc.add@2.0.0: its breaker never opened; nothing to reset" in reset.stdout
    assert bad.returncode == 2 and "give either -- COMMAND ARGS..." in bad.stderr


async def test_a_tool_that_changes_while_the_session_is_open_is_refused_after_list_changed(
    engine: Engine, registry: Registry, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    await import_server(registry, stdio("calc", "--calls-file", str(calls), mode="legacy"))
    before = await engine.run({"tool": "calc.add", "input": {"a": 1, "b": 2}}, {})
    upgraded = await engine.run({"tool": "calc.upgrade", "input": {}}, {})
    with anyio.fail_after(10):  # the notification reaches the session's task, which lists the tools again
        while True:
            after = await engine.run({"tool": "calc.add", "input": {"a": 1, "b": 2}}, {})
            if after.status == "failed":
                break
            await anyio.sleep(0.05)
    assert before.status == "succeeded" and upgraded.output == {"result": "upgraded"}
    assert after.error is not None and after.error["type"] == "contract_violation"
    assert "changed its schemas since it was imported" in after.error["message"]


async def test_an_http_session_lost_to_a_server_restart_is_opened_again(
    engine: Engine, registry: Registry, tmp_path: Path, mode: str
) -> None:
    port = free_port()
    calls = tmp_path / "calls"

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [*SERVER, "--http", str(port), "--calls-file", str(calls)], cwd=REPO, stderr=subprocess.DEVNULL
        )
        wait_for_port(port, process)
        return process

    process = start()
    try:
        await import_server(registry, ServerSpec(name="remote", url=f"http://127.0.0.1:{port}/mcp", mode=mode))
        first = await engine.run({"tool": "remote.add", "input": {"a": 1, "b": 1}}, {})
        process.kill()
        process.wait()
        process = start()  # a new process: it knows nothing of the old session
        second = await engine.run({"tool": "remote.add", "input": {"a": 2, "b": 2}}, {})
    finally:
        process.kill()
        process.wait()
    assert first.output == {"sum": 2.0}
    assert second.status == "succeeded", second.error
    assert second.output == {"sum": 4.0}


async def test_a_downstream_call_carries_the_runs_trace_context(engine: Engine, registry: Registry, mode: str):
    await import_server(registry, stdio("calc", mode=mode))
    caller = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(1))
    with trace.use_span(NonRecordingSpan(caller)):
        traced = await engine.run({"tool": "calc.trace_id", "input": {}}, {})
    untraced = await engine.run({"tool": "calc.trace_id", "input": {}}, {})
    assert traced.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert traced.output == {"result": traced.trace_id}  # the downstream server saw the run's trace
    assert untraced.output == {"result": "none"}
