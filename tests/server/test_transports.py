"""The server as users run it: `podium serve` over stdio and over streamable HTTP, in real subprocesses."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.helpers import PODIUM, REPO, free_port, serve_args, server_env, wait_for_port

pytestmark = pytest.mark.anyio


async def test_stdio_server_runs_a_chain_for_a_real_client(tmp_path: Path, registry_file: Path) -> None:
    params = StdioServerParameters(command=PODIUM, args=serve_args(tmp_path, registry_file), env=server_env(), cwd=REPO)
    with anyio.fail_after(60):
        async with Client(params) as client:
            result = await client.call_tool(
                "run_chain", {"steps": [{"tool": "add"}, {"tool": "noisy"}], "input": {"a": 20, "b": 22}}
            )
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["output"] == {"sum": 42}


async def test_the_stdio_wire_carries_only_json_rpc_even_when_a_tool_prints(
    tmp_path: Path, registry_file: Path
) -> None:
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "wire-test", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_chain", "arguments": {"steps": [{"tool": "noisy"}], "input": {"x": 1}}}},
    ]  # fmt: skip
    process = await anyio.open_process(
        [PODIUM, *serve_args(tmp_path, registry_file)], env=server_env(), cwd=REPO, stderr=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    lines: list[str] = []
    buffer = b""
    with anyio.fail_after(60):
        for message in messages:
            await process.stdin.send((json.dumps(message) + "\n").encode())
        while not any('"id":2' in line.replace(" ", "") for line in lines):
            buffer += await process.stdout.receive()
            *complete, buffer = buffer.split(b"\n")
            lines.extend(line.decode() for line in complete if line.strip())
        await process.stdin.aclose()
        rest = b""
        async for chunk in process.stdout:
            rest += chunk
        await process.wait()
    lines.extend(line for line in (buffer + rest).decode().splitlines() if line.strip())
    parsed = [json.loads(line) for line in lines]  # every line on the wire is JSON...
    assert all(p.get("jsonrpc") == "2.0" for p in parsed)  # ...and JSON-RPC
    assert not any("chatter" in line for line in lines)
    reply = next(p for p in parsed if p.get("id") == 2)
    assert reply["result"]["structuredContent"]["status"] == "succeeded"


@asynccontextmanager
async def http_server(tmp_path: Path, registry_file: Path) -> AsyncIterator[str]:
    """``podium serve --http`` in a subprocess, for as long as the block runs; yields its MCP URL."""
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port))]
    process = await anyio.open_process(args, env=server_env(), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, process)
        with anyio.fail_after(60):
            yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        await process.wait()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_server_serves_mcp_at_slash_mcp(tmp_path: Path, registry_file: Path, mode: Any) -> None:
    async with http_server(tmp_path, registry_file) as url, Client(url, mode=mode) as client:
        run = await client.call_tool("run_chain", {"steps": [{"tool": "add"}], "input": {"a": 1, "b": 2}})
        listed = await client.call_tool("list_runs", {})
    assert run.structured_content is not None and run.structured_content["output"] == {"sum": 3}
    assert listed.structured_content is not None and len(listed.structured_content["runs"]) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_run_with_a_large_output_answers_over_http_in_both_protocol_eras(
    tmp_path: Path, registry_file: Path, mode: Any
) -> None:
    # 1,000 outputs of ~900 bytes: a result carrying the output and every step would exceed the 1 MiB a 2025-11-25
    # client accepts in one server-sent event; the result carries a pointer to the output instead
    items = [f"{n:04d}" + "x" * 896 for n in range(1000)]
    async with http_server(tmp_path, registry_file) as url, Client(url, mode=mode) as client:
        done = await client.call_tool(
            "map_reduce", {"items": items, "map": {"tool": "echo", "input": {"text": {"$": "item"}}}}
        )
        run = done.structured_content
        assert run is not None and run["status"] == "succeeded"
        whole = await client.read_resource(f"podium://runs/{run['run_id']}/output")
    text = done.content[0].text  # type: ignore[union-attr]
    assert len(text) < 64 * 1024 and json.loads(text) == run
    assert run["output"] is None and run["output_truncated"] is True
    assert f"podium://runs/{run['run_id']}/output" in run["next_action"]
    assert run["step_counts"]["completed"] == 1001 and len(run["steps"]) == 20 and run["steps_omitted"] == 981
    output = json.loads(whole.contents[0].text)  # type: ignore[union-attr]
    assert [o["text"] for o in output] == items


def test_http_on_a_public_interface_without_principals_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [PODIUM, "serve", "--http", "--host", "0.0.0.0", "--db", str(tmp_path / "p.db")],
        env=server_env(), cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "binds only to loopback" in done.stderr and "[[principal]]" in done.stderr


async def test_with_principals_http_needs_a_known_bearer_token(tmp_path: Path, registry_file: Path) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    from server.auth import token_hash

    config = tmp_path / "podium.toml"
    config.write_text(
        f'[[principal]]\nname = "ops-bot"\nroles = ["supervisor"]\ntoken_sha256 = "{token_hash("s3cret")}"\n'
    )
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port), "--config", str(config))]
    process = await anyio.open_process(args, env=server_env(), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx2.AsyncClient() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                refused = await http.post(
                    url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
                )
                assert refused.status_code == 401
        with anyio.fail_after(60):
            async with (
                httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                run = await client.call_tool("run_chain", {"steps": [{"tool": "add"}], "input": {"a": 2, "b": 3}})
    finally:
        process.terminate()
        await process.wait()
    assert run.structured_content is not None and run.structured_content["output"] == {"sum": 5}
