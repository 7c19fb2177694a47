"""`podium stats`, the `podium://stats` resources and `podium db`, run as a person, a script and a client do."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError

from server import Settings, build_server
from server.stats import StatsResult, read_stats
from storage import Store
from storage.migrate import HEAD
from tests.helpers import podium
from tests.server.test_cli import make_runs
from tests.server.test_mcp_tools import call

pytestmark = pytest.mark.anyio


def test_podium_stats_shows_each_tool_version_and_runs_per_pattern(tmp_path: Path, registry_file: Path) -> None:
    db = str(tmp_path / "podium.db")
    make_runs(db, registry_file)  # a chain add -> double that succeeded, and a chain that failed on a contract
    shown = podium("stats", "--db", db, "--json")
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    tools = {f"{t['tool']}@{t['version']}": t for t in stats["tools"]}
    assert set(tools) == {"add@1.0.0", "double@1.0.0", "wrong-output@1.0.0"}
    assert tools["add@1.0.0"]["calls"] == 1 and tools["add@1.0.0"]["error_rate"] == 0
    assert tools["wrong-output@1.0.0"]["failed"] == 1 and tools["wrong-output@1.0.0"]["error_rate"] == 1
    assert 0 <= tools["add@1.0.0"]["p50_ms"] <= tools["add@1.0.0"]["p99_ms"]
    assert stats["runs"] == {"chain": {"failed": 1, "succeeded": 1}}
    assert stats["since"].endswith("Z") and stats["until"].endswith("Z")
    text = podium("stats", "--db", db, "--since", "1h", "--tool", "add").stdout
    assert text.splitlines()[1].split() == ["TOOL", "CALLS", "ERRORS", "P50", "P95", "P99", "COST"]
    assert "add@1.0.0" in text and "double@1.0.0" not in text and "chain" in text
    one = json.loads(podium("stats", "--db", db, "--tool", "add@1.0.0", "--json").stdout)
    assert [(t["tool"], t["version"]) for t in one["tools"]] == [("add", "1.0.0")]
    assert json.loads(podium("stats", "--db", db, "--tool", "add@9.9.9", "--json").stdout)["tools"] == []

    async def most_called() -> StatsResult:
        async with Store.open(db) as store:
            return await read_stats(store, "all", limit=1)

    capped = anyio.run(most_called)
    assert len(capped.tools) == 1 and capped.tools_omitted == 2
    bad = podium("stats", "--db", db, "--since", "yesterday")
    assert bad.returncode == 2
    assert "--since 'yesterday' is not a window: a number and a unit s, m, h or d (30m, 1h, 7d), or all" in bad.stderr


def test_podium_db_current_and_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "deploy" / "podium.db"
    missing = podium("db", "current", "--db", str(db))
    assert missing.returncode == 2 and "no database at" in missing.stderr and "podium db upgrade" in missing.stderr
    upgraded = podium("db", "upgrade", "--db", str(db))
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"at {HEAD} (was empty)" in upgraded.stdout
    again = podium("db", "upgrade", "--db", str(db))
    assert f"at {HEAD} (already)" in again.stdout
    current = json.loads(podium("db", "current", "--db", str(db), "--json").stdout)
    assert current == {"database": str(db), "current": HEAD, "head": HEAD, "up_to_date": True}
    with sqlite3.connect(db) as connection:  # as a database an older Podium left behind
        connection.execute("UPDATE alembic_version SET version_num = '0009'")
        connection.execute("DROP INDEX ix_steps_stats")
        connection.execute("ALTER TABLE runs DROP COLUMN pattern")
        connection.execute("ALTER TABLE runs DROP COLUMN span_id")
    behind = podium("db", "current", "--db", str(db))
    assert f"revision 0009; this version's schema is {HEAD}: needs `podium db upgrade`" in behind.stdout
    assert f"at {HEAD} (was 0009)" in podium("db", "upgrade", "--db", str(db)).stdout


async def test_the_stats_resources(settings: Settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode) as client:
        for n in range(3):
            await call(client, "run_chain", {"steps": [{"tool": "add"}], "input": {"a": n, "b": 1}})
        day = json.loads((await client.read_resource("podium://stats")).contents[0].text)  # type: ignore[union-attr]
        every = await client.read_resource("podium://stats/all")
        with pytest.raises(MCPError) as bad:
            await client.read_resource("podium://stats/forever")
    [add] = day["tools"]
    assert (add["tool"], add["calls"], add["failed"]) == ("add", 3, 0)
    assert day["runs"] == {"chain": {"succeeded": 3}}
    assert json.loads(every.contents[0].text)["since"] is None  # type: ignore[union-attr]
    assert "invalid_input: window 'forever' is not a window" in bad.value.error.message
