"""`PODIUM_LOG_FORMAT=json`: the server's log lines as JSON objects, each naming its run and trace."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.helpers import PODIUM, REPO, podium, serve_args, server_env

pytestmark = pytest.mark.anyio


async def test_json_log_lines_name_the_run_and_its_trace(tmp_path: Path, registry_file: Path) -> None:
    chatty = tmp_path / "chatty.toml"
    chatty.write_text(
        '[[tool]]\nname = "chatty"\nversion = "1.0.0"\nprovider = { type = "python", target = "tests.tools:chatty" }\n'
    )
    log = tmp_path / "server.log"
    env = {**server_env(), "PODIUM_LOG_FORMAT": "json"}
    args = [PODIUM, *serve_args(tmp_path, registry_file), "--registry", str(chatty)]
    command = f"exec {shlex.join(args)} 2>{shlex.quote(str(log))}"  # the server's stderr, to a file
    params = StdioServerParameters(command="/bin/sh", args=["-c", command], env=env, cwd=REPO)
    with anyio.fail_after(60):
        async with Client(params) as client:
            result = await client.call_tool("run_chain", {"steps": [{"tool": "chatty"}], "input": {"a": 1}})
    assert result.structured_content is not None, result.content
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the server wrote no log line"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    [checked] = [line for line in lines if line["logger"] == "tests.tools"]
    assert checked["message"] == "checked 1 fields" and checked["level"] == "warning"
    assert checked["run_id"] == result.structured_content["run_id"]
    assert checked["trace_id"] == result.structured_content["trace_id"]
    assert checked["time"].endswith("Z")


def test_an_unknown_log_format_is_refused_by_name() -> None:
    refused = podium("stats", env={"PODIUM_LOG_FORMAT": "xml"})
    assert refused.returncode == 2
    assert "PODIUM_LOG_FORMAT is 'xml': it is text (the default) or json" in refused.stderr
