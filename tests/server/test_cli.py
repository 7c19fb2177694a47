"""The installed `podium` command, run as a person or a script runs it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from patterns import Engine
from registry import Registry
from server.results import RunResult
from storage import Store
from tests.helpers import podium


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "podium.db")


def make_runs(db: str, registry_file: Path) -> list[str]:
    """Two finished runs made through the Python API: one succeeded, one failed on a contract."""

    async def go() -> list[str]:
        async with Store.open(db) as store:
            registry = Registry(store)
            await registry.register_file(registry_file)
            async with Engine(store, registry) as engine:
                ok = await engine.run({"chain": [{"tool": "add"}, {"tool": "double", "input": {"value": 1}}]},
                                      {"a": 1, "b": 2})  # fmt: skip
                bad = await engine.run({"chain": [{"tool": "wrong-output"}]}, {})
        return [ok.id, bad.id]

    return anyio.run(go)


def test_tools_add_then_list_and_show(db: str, registry_file: Path) -> None:
    added = podium("tools", "add", str(registry_file), "--db", db)
    assert added.returncode == 0, added.stderr
    assert "published add@1.0.0" in added.stdout
    listed = podium("tools", "list", "--db", db, "--json")
    names = [t["name"] for t in json.loads(listed.stdout)["tools"]]
    assert "add" in names and "double" in names
    shown = podium("tools", "show", "add@^1", "--db", db)
    assert shown.returncode == 0 and "add@1.0.0" in shown.stdout and '"required"' in shown.stdout
    table = podium("tools", "list", "--db", db)
    assert table.stdout.splitlines()[0].split()[:3] == ["TOOL", "VERSION", "VERSIONS"]


def test_runs_list_and_show_use_the_mcp_field_names_with_json(db: str, registry_file: Path) -> None:
    ok, bad = make_runs(db, registry_file)
    listed = json.loads(podium("runs", "list", "--db", db, "--json").stdout)
    assert [r["run_id"] for r in listed["runs"]] == [bad, ok]
    assert set(listed["runs"][0]) == {"run_id", "status", "created_at", "usage", "error", "tags"}
    failed = json.loads(podium("runs", "list", "--status", "failed", "--db", db, "--json").stdout)
    assert [r["run_id"] for r in failed["runs"]] == [bad]
    shown = json.loads(podium("runs", "show", ok, "--db", db, "--json").stdout)
    assert set(shown) == set(RunResult.model_fields)  # pinned field by field in test_mcp_tools
    assert shown["output"] == {"value": 2}


def test_runs_skip_and_retry_resolve_a_failed_run_and_refuse_what_they_cannot_do(db: str, registry_file: Path) -> None:
    ok, bad = make_runs(db, registry_file)  # bad: wrong-output broke its output contract at step 0

    not_json = podium("runs", "skip", bad, "--step", "0", "--output", "{total: 12", "--db", db)
    assert (not_json.returncode, not_json.stdout) == (2, "")
    assert "--output is not valid JSON" in not_json.stderr
    breaks_contract = podium("runs", "skip", bad, "--step", "0", "--output", '{"total": "12"}', "--db", db)
    assert breaks_contract.returncode == 2
    assert "wrong-output@1.0.0" in breaks_contract.stderr and "total" in breaks_contract.stderr
    settled = podium("runs", "retry", ok, "--db", db)
    assert settled.returncode == 2 and f"run {ok} is succeeded; only a run that is" in settled.stderr
    unknown = podium("runs", "retry", bad, "--step", "9", "--db", db)
    assert unknown.returncode == 2 and "no step at path '9'" in unknown.stderr and "0 (wrong-output" in unknown.stderr
    assert json.loads(podium("runs", "show", bad, "--db", db, "--json").stdout)["history"] == []  # nothing changed

    retried = podium("runs", "retry", bad, "--as", "ana", "--db", db, "--json")
    assert retried.returncode == 1  # it fails again the same way: the tool still breaks its contract
    again = json.loads(retried.stdout)
    assert again["status"] == "failed" and again["error"]["type"] == "contract_violation"
    skipped = podium("runs", "skip", bad, "--step", "0", "--output", '{"total": 12}', "--as", "ben", "--db", db)
    assert skipped.returncode == 0, skipped.stderr
    done = json.loads(podium("runs", "show", bad, "--db", db, "--json").stdout)
    assert (done["status"], done["output"]) == ("succeeded", {"total": 12})
    assert [(e["action"], e["by"], e["from_status"]) for e in done["history"]] == [
        ("retry", "ana", "failed"),
        ("skip", "ben", "failed"),
    ]


def test_runs_show_draws_the_step_tree_with_errors(db: str, registry_file: Path) -> None:
    _ok, bad = make_runs(db, registry_file)
    shown = podium("runs", "show", bad, "--db", db)
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"run {bad}: failed")
    trace_id = json.loads(podium("runs", "show", bad, "--db", db, "--json").stdout)["trace_id"]
    assert lines[1] == f"trace {trace_id}" and len(trace_id) == 32
    assert any("└─ 0  wrong-output@1.0.0  failed  1 attempt" in line for line in lines)
    assert any("! contract_violation:" in line for line in lines)


def test_runs_tail_prints_a_settled_run_and_exits_with_its_outcome(db: str, registry_file: Path) -> None:
    ok, bad = make_runs(db, registry_file)
    assert podium("runs", "tail", ok, "--db", db).returncode == 0
    tailed = podium("runs", "tail", bad, "--db", db)
    assert tailed.returncode == 1 and "failed" in tailed.stdout


def test_runs_cancel_leaves_a_finished_run_alone(db: str, registry_file: Path) -> None:
    ok, _bad = make_runs(db, registry_file)
    done = json.loads(podium("runs", "cancel", ok, "--db", db, "--json").stdout)
    assert done["status"] == "succeeded"


def test_validate_checks_a_step_file(db: str, registry_file: Path, tmp_path: Path) -> None:
    podium("tools", "add", str(registry_file), "--db", db)
    good = tmp_path / "good.yaml"
    good.write_text("chain:\n  - tool: add\n  - tool: double@^1\n")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"chain": [{"tool": "add", "input": {"$": "steps.nope"}}]}))
    ok = podium("validate", str(good), "--db", db)
    assert ok.returncode == 0 and "add -> 1.0.0" in ok.stdout
    failed = podium("validate", str(bad), "--db", db, "--json")
    assert failed.returncode == 1
    assert "no step has id 'nope'" in json.loads(failed.stdout)["problems"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "nope"], "no run with id 'nope'"),
        (["tools", "show", "missing-tool"], "unknown tool 'missing-tool'"),
        (["validate", "/no/such/file.yaml"], "cannot read /no/such/file.yaml"),
        (["tools", "add", "/no/such/tools.toml"], "tools.toml"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_status_2(db: str, args: list[str], message: str) -> None:
    done = podium(*args, "--db", db)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_settings_come_from_podium_toml_and_env_and_db_wins(tmp_path: Path, registry_file: Path) -> None:
    from_file = tmp_path / "from-file.db"
    (tmp_path / "podium.toml").write_text(f'database_url = "sqlite:///{from_file}"\n[limits]\nmax_steps = 5\n')
    assert podium("tools", "add", str(registry_file), cwd=tmp_path).returncode == 0
    assert from_file.exists()
    from_env = tmp_path / "from-env.db"
    assert podium("tools", "add", str(registry_file), cwd=tmp_path,
                  env={"PODIUM_DATABASE_URL": f"sqlite:///{from_env}"}).returncode == 0  # fmt: skip
    assert from_env.exists()
    flag = tmp_path / "flag.db"
    podium("tools", "add", str(registry_file), "--db", str(flag), cwd=tmp_path,
           env={"PODIUM_DATABASE_URL": f"sqlite:///{from_env}"})  # fmt: skip
    assert flag.exists()
    broken = podium("tools", "list", cwd=tmp_path, env={"PODIUM_LIMITS__MAX_STEPS": "zero"})
    assert broken.returncode == 2 and "limits.max_steps" in broken.stderr
    # the test suite's PostgreSQL URL, exported as the README says, is not a setting: nothing to refuse
    suite = podium("tools", "list", cwd=tmp_path, env={"PODIUM_TEST_POSTGRES_URL": "postgresql+asyncpg://x@h/test"})
    assert suite.returncode == 0, suite.stderr
    misspelt = podium("tools", "list", cwd=tmp_path, env={"PODIUM_LIMIT__MAX_STEPS": "5"})
    assert misspelt.returncode == 2 and "limit" in misspelt.stderr


def test_the_default_database_is_created_in_the_user_data_directory(tmp_path: Path, registry_file: Path) -> None:
    home = tmp_path / "home"
    done = podium("tools", "list", env={"HOME": str(home), "XDG_DATA_HOME": str(home / "data")})
    assert done.returncode == 0, done.stderr
    assert (home / "data" / "podium" / "podium.db").exists()


def test_help_lists_the_commands() -> None:
    done = podium("--help")
    for command in ("serve", "demo", "runs", "tools", "validate"):
        assert command in done.stdout


def test_demo_runs_the_scenarios_through_mcp_and_leaves_the_runs_inspectable(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    demo = podium("demo", env=home)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stdout.count("MCP call: run_workflow") == 5
    assert "post-to-erp@1.0.0  completed" in demo.stdout
    assert "missing (data unavailable): fan_out/2" in demo.stdout
    assert "1/route/case=billing  handle-billing@1.0.0  completed" in demo.stdout
    listed = json.loads(podium("runs", "list", "--json", env=home).stdout)["runs"]
    assert "the demo decides for them: modify as 'legal'" in demo.stdout
    assert "send-for-signature@1.0.0  completed" in demo.stdout
    assert "Dana Ruiz is ready for 2027-01-11" in demo.stdout
    # five scenario runs, the onboarding coordinator's three child runs, two renewals and four shipping orders
    assert sorted(r["status"] for r in listed) == ["partial"] + ["succeeded"] * 13
    assert demo.stdout.count("fired contract-renewals -> run") == 2
    assert "suppressed contract-renewals (duplicate until" in demo.stdout
    assert "suppressed contract-renewals (cooldown until" in demo.stdout
    assert "imported shipping.skyfreight_quote@1.0.0 (new)" in demo.stdout
    assert "the circuit breaker of shipping.skyfreight_quote@1.0.0 opened" in demo.stdout
    assert "0/route/default  shipping.roadline_quote@1.0.0  completed" in demo.stdout
    assert "shipping.skyfreight_quote@1.0.0  open   1      3 of its last 3 calls failed" in demo.stdout
    gates = json.loads(podium("gates", "list", "--status", "decided", "--json", env=home).stdout)["gates"]
    assert sorted(g["decision"] for g in gates) == ["approve"] * 3 + ["modify"] * 3  # contract, and two renewals
    found = re.search(r"== 5\. Employee onboarding.*?\nrun (\S+): succeeded", demo.stdout, re.S)
    assert found is not None, demo.stdout
    coordinator = found.group(1)
    children = json.loads(podium("runs", "list", "--parent", coordinator, "--json", env=home).stdout)["runs"]
    shown = podium("runs", "show", coordinator, env=home).stdout
    assert len(children) == 3 and all(c["run_id"] in shown for c in children)
    assert "(onboarding-it@1.0.0): succeeded  (2 steps" in shown and "it-provision-laptop@1.0.0  completed" in shown


def test_runs_cancel_from_the_cli_stops_a_run_a_server_is_executing(tmp_path: Path, registry_file: Path) -> None:
    db = str(tmp_path / "podium.db")

    async def go() -> dict[str, Any]:
        async with Store.open(db) as store:
            registry = Registry(store)
            await registry.register_file(registry_file)
            async with Engine(store, registry) as engine:
                run = await engine.start({"chain": [{"tool": "sleepy", "input": {"seconds": 30}}, {"tool": "noop"}]})
                with anyio.fail_after(10):
                    while not [s for s in await engine.steps(run.id) if s.path == "0"]:
                        await anyio.sleep(0.05)
                cancel = await anyio.to_thread.run_sync(lambda: podium("runs", "cancel", run.id, "--db", db, "--json"))
                assert cancel.returncode == 0, cancel.stderr
                with anyio.fail_after(10):
                    settled = await engine.wait(run.id)
                steps = {s.path: s.status for s in await engine.steps(run.id)}
        return {"status": settled.status, "error": settled.error, "steps": steps}

    outcome = anyio.run(go)
    assert outcome["status"] == "cancelled"
    assert outcome["error"]["type"] == "cancelled"
    assert "cancelled from the podium CLI" in outcome["error"]["message"]
    assert outcome["steps"] == {"": "cancelled", "0": "cancelled"}  # the second step never ran


def test_runs_tail_follows_a_live_run_until_it_settles(tmp_path: Path, registry_file: Path) -> None:
    db = str(tmp_path / "podium.db")

    async def go() -> subprocess.CompletedProcess[str]:
        async with Store.open(db) as store:
            registry = Registry(store)
            await registry.register_file(registry_file)
            async with Engine(store, registry) as engine:
                run = await engine.start(
                    {
                        "chain": [
                            {"tool": "sleepy", "input": {"seconds": 4}},  # still running when `tail` starts
                            {"tool": "add", "input": {"a": 1, "b": 1}},
                        ]
                    }
                )
                await store.flush()
                return await anyio.to_thread.run_sync(lambda: podium("runs", "tail", run.id, "--db", db))

    tailed = anyio.run(go)
    assert tailed.returncode == 0, tailed.stderr
    lines = tailed.stdout.splitlines()
    started = next(i for i, line in enumerate(lines) if "sleepy@1.0.0  started" in line)
    completed = next(i for i, line in enumerate(lines) if "add@1.0.0  completed" in line)
    assert started < completed
    assert any(": succeeded" in line for line in lines[completed:])


def test_a_detached_skip_hands_the_run_to_the_next_server(db: str, registry_file: Path) -> None:
    _ok, bad = make_runs(db, registry_file)

    skipped = podium("runs", "skip", bad, "--step", "0", "--output", '{"total": 5}', "--detach", "--db", db)

    assert skipped.returncode == 0, skipped.stderr
    assert f"run {bad}: running" in skipped.stdout and f"podium runs tail {bad}" in skipped.stdout

    async def serve() -> str:
        async with Store.open(db) as store, Engine(store, Registry(store)) as engine:  # a server starting up
            with anyio.fail_after(10):
                while (run := await engine.get(bad)).status == "running":
                    await anyio.sleep(0.05)
            return run.status

    assert anyio.run(serve) == "succeeded"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql+asyncpg://postgres@127.0.0.1:9/podium", id="unreachable-postgresql"),
        pytest.param("sqlite:////proc/no/such/dir/podium.db", id="sqlite-where-no-file-can-be"),
    ],
)
def test_a_database_that_cannot_be_reached_is_one_line_not_a_traceback(url: str) -> None:
    done = podium("runs", "list", "--db", url)
    assert done.returncode == 2
    assert done.stderr.startswith("podium: the database failed: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
