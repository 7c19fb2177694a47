"""The ``podium`` command: serve, demo, and inspect and steer runs and tools from a shell."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, ValidationError

from patterns import SETTLED, Engine, PatternError, gates, interventions
from patterns.workflows import workflow_checker
from registry import Registry, RegistryError, load_registry_file, staged
from registry.mcp_import import import_server
from registry.servers import ServerSpec
from server.config import ConfigError, Settings
from server.eventloop import loop_options
from server.log_format import LogFormatError, configure_logging
from server.render import gate_report, gates_table, run_report, runs_table, step_tree, table, tools_table
from server.results import (
    GateList,
    RunList,
    ToolList,
    WorkflowList,
    catalogue,
    gate_detail,
    iso,
    run_summary,
    tool_info,
    workflow_catalogue,
    workflow_info,
)
from server.runtree import run_tree_report, whole
from server.stats import DEFAULT_WINDOW, WindowError, read_stats, stats_report
from storage import StorageError
from storage.records import EventRecord

if TYPE_CHECKING:
    from storage import Store

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _emit(args: argparse.Namespace, result: BaseModel, text: str) -> int:
    """Print ``result`` as JSON with ``--json`` (the MCP field names), else the text for people."""
    if args.json:
        _print_json(result.model_dump(mode="json"))
    else:
        print(text)
    return 0


def _as(command: argparse.ArgumentParser, who: str) -> None:
    """The ``--as NAME`` option: who acts, for the record (default: the user running the command)."""
    me = getpass.getuser()
    command.add_argument("--as", dest="as_name", metavar="NAME", default=me, help=f"{who} (default: you, {me})")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help="database URL or SQLite file (overrides settings)")
    common.add_argument("--config", metavar="FILE", help="settings file (default: PODIUM_CONFIG or ./podium.toml)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable output (MCP result field names)")

    parser = argparse.ArgumentParser(prog="podium", description="Durable orchestration patterns as MCP tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the MCP server (stdio unless --http)")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--registry", action="append", default=[], metavar="FILE", help="registry file to load")

    commands.add_parser("demo", parents=[common], help="run the bundled example workflows end to end")

    runs = commands.add_parser("runs", help="inspect and steer runs").add_subparsers(dest="action", required=True)
    runs_list = runs.add_parser("list", parents=[common, as_json], help="recent runs, newest first")
    runs_list.add_argument("--status")
    runs_list.add_argument("--limit", type=int, default=20)
    runs_list.add_argument("--parent", metavar="RUN_ID", help="only the child runs of this run")
    runs_show = runs.add_parser("show", parents=[common, as_json], help="a run and its step tree")
    runs_show.add_argument("run_id")
    runs_tail = runs.add_parser("tail", parents=[common], help="follow a live run until it settles")
    runs_tail.add_argument("run_id")
    runs_tail.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    runs_cancel = runs.add_parser("cancel", parents=[common, as_json], help="cancel a run and its child runs")
    runs_cancel.add_argument("run_id")
    runs_cancel.add_argument("--reason")
    _as(runs_cancel, "who cancels")
    retry = runs.add_parser(
        "retry",
        parents=[common, as_json],
        help="run again the steps of a stopped run that did not complete (needs_attention, failed, timed_out)",
    )
    retry.add_argument("run_id")
    retry.add_argument("--step", metavar="PATH", help="retry only the interrupted step at PATH (default: all)")
    skip = runs.add_parser(
        "skip", parents=[common, as_json], help="record a step that did not complete as done, with an output"
    )
    skip.add_argument("run_id")
    skip.add_argument("--step", metavar="PATH", required=True, help="the tool step to record as done")
    skip.add_argument(
        "--output", metavar="JSON", default="null", help="its output, checked against the tool's output schema"
    )
    for operator_command in (retry, skip):
        _as(operator_command, "who does it, for the run's history")
        operator_command.add_argument("--reason", help="why, for the run's history")
        operator_command.add_argument(
            "--detach",
            action="store_true",
            help="hand the run to the servers and return at once (default: execute it here until it stops)",
        )

    tools = commands.add_parser("tools", help="the tool registry").add_subparsers(dest="action", required=True)
    tools.add_parser("list", parents=[common, as_json], help="every tool, newest version")
    tools_show = tools.add_parser("show", parents=[common, as_json], help="one tool version")
    tools_show.add_argument("ref")
    tools_add = tools.add_parser("add", parents=[common, as_json], help="publish the tools of a registry file")
    tools_add.add_argument("file")
    tools_import = tools.add_parser(
        "import-mcp",
        parents=[common, as_json],
        help="publish a downstream MCP server and its tools as NAME.TOOL (new versions for changed tools)",
        usage="podium tools import-mcp NAME [--env K=V]... [--cwd DIR] -- COMMAND ARGS...\n"
        "       podium tools import-mcp NAME --url URL [--header K=V]...",
    )
    tools_import.add_argument("name", help="the server's name: its tools become NAME.TOOL")
    tools_import.add_argument("--url", help="a streamable HTTP server's endpoint, instead of a command")
    tools_import.add_argument("--header", action="append", default=[], metavar="K=V", help="an HTTP header (--url)")
    tools_import.add_argument("--env", action="append", default=[], metavar="K=V", help="an environment variable")
    tools_import.add_argument("--cwd", help="the working directory of a stdio server")
    tools_import.add_argument("--timeout", type=float, default=60.0, help="seconds a call may take (default 60)")
    tools_import.add_argument("--legacy", action="store_true", help="speak the 2025-11-25 protocol (initialize)")
    tools_deprecate = tools.add_parser(
        "deprecate", parents=[common, as_json], help="deprecate an exact version (ranges stop choosing it)"
    )
    tools_deprecate.add_argument("ref", help="name@1.2.3")
    tools_deprecate.add_argument("--undo", action="store_true", help="undeprecate it")

    workflows = commands.add_parser("workflows", help="published workflows").add_subparsers(
        dest="action", required=True
    )
    workflows.add_parser("list", parents=[common, as_json], help="every workflow, newest version")
    workflows_show = workflows.add_parser("show", parents=[common, as_json], help="one workflow version")
    workflows_show.add_argument("ref")
    workflows_add = workflows.add_parser("add", parents=[common, as_json], help="publish the workflows of a file")
    workflows_add.add_argument("file")
    workflows_check = workflows.add_parser(
        "validate", parents=[common, as_json], help="check the workflows of a file without publishing them"
    )
    workflows_check.add_argument("file")

    breakers = commands.add_parser("breakers", help="circuit breakers of tool versions").add_subparsers(
        dest="action", required=True
    )
    breakers.add_parser("list", parents=[common, as_json], help="every breaker: state, failure rate, opens")
    breakers_reset = breakers.add_parser("reset", parents=[common, as_json], help="close a breaker now")
    breakers_reset.add_argument("ref", help="the tool version, name@1.2.3 (or a range resolving to one)")

    events = commands.add_parser("events", help="events and what they caused").add_subparsers(
        dest="action", required=True
    )
    events_emit = events.add_parser(
        "emit", parents=[common, as_json], help="send an event: the triggers it matches start their workflows"
    )
    events_emit.add_argument("type", help="the event type, e.g. contract.renewal_due")
    events_emit.add_argument("--key", help="the entity it is about (a trigger's cooldown is per key)")
    events_emit.add_argument("--payload", default="{}", help="the event's JSON payload (default {})")
    events_emit.add_argument("--id", dest="event_id", help="its id: an id seen in the last 24 h is a duplicate")
    events_emit.add_argument(
        "--detach", action="store_true", help="leave the runs it starts to the servers instead of running them here"
    )
    events_list = events.add_parser("list", parents=[common, as_json], help="recent events, newest first")
    events_list.add_argument("--type")
    events_list.add_argument("--key")
    events_list.add_argument("--limit", type=int, default=20)
    events_show = events.add_parser("show", parents=[common, as_json], help="one event and what it caused")
    events_show.add_argument("event_id")

    triggers = commands.add_parser("triggers", help="event triggers").add_subparsers(dest="action", required=True)
    triggers.add_parser("list", parents=[common, as_json], help="every trigger")
    triggers_show = triggers.add_parser("show", parents=[common, as_json], help="one trigger")
    triggers_show.add_argument("name")
    triggers_add = triggers.add_parser("add", parents=[common, as_json], help="publish the triggers of a file")
    triggers_add.add_argument("file")
    for verb in ("enable", "disable"):
        toggle = triggers.add_parser(verb, parents=[common, as_json], help=f"{verb} a trigger")
        toggle.add_argument("name")

    gates = commands.add_parser("gates", help="human approval gates").add_subparsers(dest="action", required=True)
    gates_list = gates.add_parser("list", parents=[common, as_json], help="gates, oldest first, with the time left")
    gates_list.add_argument("--status", default="pending", help="pending (default), decided, expired, timed_out, all")
    gates_list.add_argument("--limit", type=int, default=100)
    gates_show = gates.add_parser("show", parents=[common, as_json], help="a gate: brief, payload, history")
    gates_show.add_argument("gate_id")
    for verb in ("approve", "reject"):
        decide = gates.add_parser(verb, parents=[common, as_json], help=f"{verb} a gate")
        decide.add_argument("gate_id")
        decide.add_argument("--comment")
        _as(decide, "who decides")
        if verb == "approve":
            decide.add_argument("--payload", help="the edited payload as JSON (approves a modified version)")

    stats = commands.add_parser(
        "stats", parents=[common, as_json], help="per tool version: calls, error rate, p50/p95/p99, cost; runs"
    )
    stats.add_argument("--since", default=DEFAULT_WINDOW, metavar="WINDOW", help="30m, 1h, 7d, or all (default 24h)")
    stats.add_argument("--tool", metavar="NAME", help="one tool's versions only (NAME@VERSION: one version)")

    db = commands.add_parser("db", help="the database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", parents=[common], help="migrate the database to this version's schema")
    db.add_parser("current", parents=[common, as_json], help="the schema revision of the database, and this version's")

    validate = commands.add_parser("validate", parents=[common, as_json], help="check a step tree file")
    validate.add_argument("file", help="a JSON or YAML file holding one step tree")
    return parser


async def _with_store(settings: Settings, body: Callable[[Store], Awaitable[int]]) -> int:
    from storage import Store  # not at the top: ``podium serve`` answers its client before it loads the store

    async with Store.open(settings.database_url, durability=settings.durability) as store:
        return await body(store)


async def _runs_list(store: Store, args: argparse.Namespace) -> int:
    runs = [run_summary(r) for r in await store.list_runs(args.status, args.limit, args.parent)]
    return _emit(args, RunList(runs=runs), runs_table(runs))


async def _runs_show(store: Store, args: argparse.Namespace) -> int:
    record = await store.get_run(args.run_id)
    steps = await store.get_steps(args.run_id, payloads=False)
    result = whole(record, steps)
    if args.json:
        return _emit(args, result, "")
    print(await run_tree_report(store, record, steps))
    return 0


async def _runs_tail(store: Store, args: argparse.Namespace) -> int:
    seen: dict[str, str] = {}
    while True:
        record = await store.get_run(args.run_id)
        for step in whole(record, await store.get_steps(args.run_id, payloads=False)).steps:
            if seen.get(step.path) != step.status:
                seen[step.path] = step.status
                print(step_tree([step]), flush=True)
        if record.status in SETTLED:
            print(run_report(whole(record)), flush=True)
            return 0 if record.status in ("succeeded", "partial") else 1
        await anyio.sleep(args.interval)


async def _runs_cancel(store: Store, args: argparse.Namespace) -> int:
    async with Engine(store, Registry(store), recover=False) as engine:
        record = await engine.cancel(args.run_id, args.reason or "cancelled from the podium CLI", by=args.as_name)
    result = whole(record, await store.get_steps(record.id, payloads=False))
    return _emit(args, result, run_report(result))


async def _runs_reopen(store: Store, args: argparse.Namespace) -> int:
    """``runs retry`` and ``runs skip``: reopen the run, then execute it here (or hand it to the servers)."""
    registry = Registry(store)
    if args.action == "skip":
        try:
            output = json.loads(args.output)
        except ValueError as exc:
            raise CommandError(f"--output is not valid JSON: {exc}") from None
        reopened = await interventions.skip(
            store, registry, args.run_id, step=args.step, output=output, by=args.as_name, reason=args.reason
        )
    else:
        reopened = await interventions.retry(store, args.run_id, by=args.as_name, step=args.step, reason=args.reason)
    if not args.json:
        done = "skipped" if args.action == "skip" else "retrying"
        print(f"run {args.run_id}: {done} {', '.join(reopened.steps) or 'its unfinished steps'} ({args.as_name})")
    record = reopened.run
    if not args.detach:
        settings: Settings = args.settings
        async with Engine(store, registry, lease_s=settings.lease_s, recover=False) as engine:
            while record.status in ("pending", "running"):
                await engine.resume(args.run_id)  # unless a server claimed it first; then follow it there
                if engine.is_active(args.run_id):
                    record = await engine.wait(args.run_id)
                else:
                    await anyio.sleep(0.5)
                    record = await store.get_run(args.run_id)
    result = whole(record, await store.get_steps(record.id, payloads=False))
    text = run_report(result)
    if args.detach:
        text += f"\nhanded to the servers: one resumes it within seconds; follow it with `podium runs tail {record.id}`"
    _emit(args, result, text)
    return 0 if record.status in ("running", "waiting", "succeeded", "partial") else 1


async def _tools_list(store: Store, args: argparse.Namespace) -> int:
    tools = catalogue(await Registry(store).list_tools())
    return _emit(args, ToolList(tools=tools), tools_table(tools))


async def _tools_show(store: Store, args: argparse.Namespace) -> int:
    registry = Registry(store)
    spec = await registry.resolve(args.ref)
    info = tool_info(spec, [s.version for s in await registry.versions(spec.name)])
    if args.json:
        _print_json(info.model_dump(mode="json"))
        return 0
    print(f"{info.name}@{info.version}{' (deprecated)' if info.deprecated else ''}  —  {info.description}")
    print(f"versions: {', '.join(info.versions)}")
    print(f"idempotent: {'yes' if info.idempotent else 'no'}   cost: {info.cost:g}   timeout: {info.timeout_s or '-'}")
    print(f"tags: {', '.join(info.tags) or '-'}")
    print("input schema:", json.dumps(info.input_schema, indent=2))
    print("output schema:", json.dumps(info.output_schema, indent=2))
    return 0


async def _tools_add(store: Store, args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    registry = Registry(store)
    specs = await registry.register_file(args.file, check_workflow=workflow_checker(settings.limits, registry))
    if args.json:
        _print_json({"tools": [f"{s.name}@{s.version}" for s in specs]})
    else:
        for spec in specs:
            print(f"published {spec.name}@{spec.version}")
    return 0


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise CommandError(f"{option} {value!r} is not K=V")
        pairs[key] = rest
    return pairs


async def _tools_import_mcp(store: Store, args: argparse.Namespace) -> int:
    command = args.server_command
    if bool(command) == bool(args.url):
        raise CommandError("give either -- COMMAND ARGS... (a stdio server) or --url URL (a streamable HTTP server)")
    fields: dict[str, Any] = {"name": args.name, "timeout_s": args.timeout, "mode": "legacy" if args.legacy else "auto"}
    if args.url:
        fields.update(url=args.url, headers=_pairs(args.header, "--header"))
    else:
        fields.update(command=command, env=_pairs(args.env, "--env"), cwd=args.cwd)
    try:
        server = ServerSpec.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            if where == "name":
                problems.append(f"NAME {args.name!r} must be lowercase letters, digits and '-' (it prefixes its tools)")
            else:
                problems.append(f"{where or 'server'}: {error['msg'].removeprefix('Value error, ')}")
        raise CommandError("; ".join(problems)) from None
    reports = await import_server(Registry(store), server)
    if args.json:
        _print_json({"server": server.name, "tools": [dataclasses.asdict(r) for r in reports]})
        return 0
    print(f"MCP server {server.name} ({server.transport}): {len(reports)} tool(s)")
    for r in reports:
        if r.change == "unchanged":
            print(f"  {r.name}@{r.version}: unchanged")
        elif r.change in ("removed", "skipped"):
            print(f"  {r.name}: {r.change} ({r.detail})")
        else:
            was = f" (was {r.previous})" if r.previous else ""
            print(f"  {r.name}@{r.version}: {r.change}{was}")
    return 0


async def _tools_deprecate(store: Store, args: argparse.Namespace) -> int:
    spec = await Registry(store).deprecate(args.ref, not args.undo)
    if args.json:
        _print_json({"tool": spec.ref, "deprecated": spec.deprecated})
    else:
        print(f"{spec.ref}: {'deprecated' if spec.deprecated else 'no longer deprecated'}")
    return 0


async def _breakers_list(store: Store, args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    window = settings.breaker.window_s
    records = await store.breakers.all()
    _, counts = await store.breakers.read({r.tool: store.now() - window for r in records})
    rows = []
    for r in records:
        calls, failures = counts.get(r.tool, (0, 0))
        until = r.open_until() if r.state != "closed" else None
        due = r.state == "open" and until is not None and until <= store.now()
        rows.append(
            {
                "tool": r.tool,
                "state": r.state,
                "probe_due": due,
                "calls": calls,
                "failures": failures,
                "failure_rate": round(failures / calls, 3) if calls else 0.0,
                "opens": r.opens,
                "open_until": None if until is None else iso(until),
                "reason": r.reason,
            }
        )
    if args.json:
        _print_json({"window_s": window, "breakers": rows})
        return 0
    if not rows:
        print("no breaker has opened yet (a tool's breaker is recorded the first time it opens)")
        return 0
    print(f"failure rates over the last {window:g}s")
    print(
        table(
            ["TOOL", "STATE", "FAILED", "RATE", "OPENS", "OPEN UNTIL", "REASON"],
            [
                [
                    r["tool"],
                    r["state"],
                    f"{r['failures']}/{r['calls']}",
                    f"{r['failure_rate']:.0%}",
                    r["opens"],
                    r["open_until"] or "-",
                    r["reason"] or "",
                ]
                for r in rows
            ],
        )
    )
    return 0


async def _breakers_reset(store: Store, args: argparse.Namespace) -> int:
    spec = await Registry(store).resolve(args.ref)
    reset = await store.breakers.reset(spec.ref)
    if args.json:
        _print_json({"tool": spec.ref, "reset": reset})
    else:
        print(f"{spec.ref}: breaker closed" if reset else f"{spec.ref}: its breaker never opened; nothing to reset")
    return 0


async def _events_emit(store: Store, args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        raise CommandError(f"--payload is not valid JSON: {exc}") from None
    registry = Registry(store)
    async with Engine(store, registry, settings.limits, lease_s=settings.lease_s, recover=False) as engine:
        answer = await engine.emit(args.type, payload, key=args.key, event_id=args.event_id, source="cli")
        runs = [await engine.wait(f["run_id"]) for f in answer["fired"]] if not args.detach else []
    if args.json:
        _print_json({**answer, "runs": [run_summary(r).model_dump(mode="json") for r in runs]})
        return 0
    print(f"event {answer['event_id']}{' (a duplicate: it started nothing)' if answer['duplicate'] else ''}")
    for fired in answer["fired"]:
        print(f"  fired {fired['trigger']} for {fired['key'] or '(no key)'}: run {fired['run_id']}")
    for suppressed in answer["suppressed"]:
        print(f"  suppressed {suppressed['trigger']}: {suppressed['reason']} until {suppressed['until']}")
    for skipped in answer["skipped"]:
        print(f"  skipped {skipped['trigger']}: {skipped['reason']}")
    if not (answer["fired"] or answer["suppressed"] or answer["skipped"]):
        print("  no trigger matched (the event is stored all the same)")
    for run in runs:
        print(f"  run {run.id}: {run.status}")
    return 0


def _event_data(event: EventRecord) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "type": event.type,
        "key": event.key,
        "source": event.source,
        "received_at": iso(event.received_at),
        "payload": event.payload,
        "outcome": event.outcome,
    }


async def _events_list(store: Store, args: argparse.Namespace) -> int:
    found = await store.events.list(args.type, args.key, args.limit)
    if args.json:
        _print_json({"events": [_event_data(e) for e in found]})
        return 0
    if not found:
        print("no events")
        return 0
    rows = []
    for e in found:
        caused = e.outcome
        summary = ", ".join(
            [f"fired {f['trigger']}" for f in caused.get("fired", [])]
            + [f"{s['reason']} {s['trigger']}" for s in caused.get("suppressed", [])]
            + [f"skipped {s['trigger']}" for s in caused.get("skipped", [])]
        )
        rows.append([e.id, e.type, e.key or "-", iso(e.received_at), summary or "-"])
    print(table(["EVENT", "TYPE", "KEY", "RECEIVED", "CAUSED"], rows))
    return 0


async def _events_show(store: Store, args: argparse.Namespace) -> int:
    event = await store.events.get(args.event_id)
    if event is None:
        raise CommandError(f"no event with id {args.event_id!r}")
    _print_json(_event_data(event))
    return 0


async def _triggers_list(store: Store, args: argparse.Namespace) -> int:
    found = await Registry(store).triggers()
    if args.json:
        _print_json({"triggers": [{**t.definition(), "enabled": t.enabled} for t in found]})
        return 0
    if not found:
        print("no triggers (add some with `podium triggers add FILE`)")
        return 0
    rows = [[t.name, t.on, t.workflow, f"{t.cooldown_s:g}s", "yes" if t.enabled else "no"] for t in found]
    print(table(["TRIGGER", "ON", "WORKFLOW", "COOLDOWN", "ENABLED"], rows))
    return 0


async def _triggers_show(store: Store, args: argparse.Namespace) -> int:
    found = {t.name: t for t in await Registry(store).triggers()}
    if args.name not in found:
        raise CommandError(f"no trigger named {args.name!r} (triggers: {', '.join(found) or 'none'})")
    trigger = found[args.name]
    _print_json({**trigger.definition(), "enabled": trigger.enabled})
    return 0


async def _triggers_add(store: Store, args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    registry = Registry(store)
    loaded = load_registry_file(args.file)
    await registry.register_file(args.file, check_workflow=workflow_checker(settings.limits, registry))
    if args.json:
        _print_json({"triggers": [t.name for t in loaded.triggers]})
    else:
        for trigger in loaded.triggers:
            print(f"published trigger {trigger.name} ({trigger.on} -> {trigger.workflow})")
        if not loaded.triggers:
            print(f"{args.file} holds no triggers")
    return 0


async def _triggers_toggle(store: Store, args: argparse.Namespace) -> int:
    enabled = args.action == "enable"
    await Registry(store).enable_trigger(args.name, enabled)
    print(f"trigger {args.name}: {'enabled' if enabled else 'disabled'}")
    return 0


async def _workflows_list(store: Store, args: argparse.Namespace) -> int:
    found = workflow_catalogue(await Registry(store).list_workflows())
    lines = [f"{w.name}@{w.version}{' (deprecated)' if w.deprecated else ''}  —  {w.description}" for w in found]
    return _emit(args, WorkflowList(workflows=found), "\n".join(lines) or "no workflows are published")


async def _workflows_show(store: Store, args: argparse.Namespace) -> int:
    registry = Registry(store)
    spec = await registry.workflow(args.ref)
    info = workflow_info(spec, [s.version for s in await registry.workflow_versions(spec.name)])
    text = "\n".join(
        [
            f"{info.name}@{info.version}{' (deprecated)' if info.deprecated else ''}  —  {info.description}",
            f"versions: {', '.join(info.versions)}",
            f"allowed tools: {', '.join(info.allowed_tools) if info.allowed_tools is not None else 'any'}",
            f"limits: {json.dumps(info.limits) if info.limits else '-'}",
            "input schema: " + json.dumps(info.input_schema, indent=2),
            "output schema: " + json.dumps(info.output_schema, indent=2),
            "step: " + json.dumps(info.step, indent=2),
        ]
    )
    return _emit(args, info, text)


async def _workflows_add(store: Store, args: argparse.Namespace) -> int:
    settings: Settings = args.settings
    registry = Registry(store)
    loaded = load_registry_file(args.file)
    await registry.register_file(args.file, check_workflow=workflow_checker(settings.limits, registry))
    if args.json:
        _print_json({"workflows": [w.ref for w in loaded.workflows], "tools": [t.ref for t in loaded.tools]})
    else:
        for spec in loaded.tools:
            print(f"published {spec.ref}")
        for workflow in loaded.workflows:
            print(f"published workflow {workflow.ref}")
    return 0


async def _workflows_validate(store: Store, args: argparse.Namespace) -> int:
    from server.results import check_workflow

    loaded = load_registry_file(args.file)
    results = {}
    async with Engine(store, Registry(store), args.settings.limits, recover=False) as engine:
        with staged(loaded.workflows, loaded.tools):  # they may use each other and the file's tools
            for workflow in loaded.workflows:
                results[workflow.ref] = await check_workflow(engine, workflow)
    if args.json:
        _print_json({ref: result.model_dump(mode="json") for ref, result in results.items()})
    for ref, result in results.items():
        if args.json:
            break
        if result.valid:
            print(f"{ref}: valid; resolves to: " + ", ".join(f"{r} -> {v}" for r, v in result.lock.items()))
        else:
            print("\n".join([f"{ref}: invalid:", *(f"  - {p}" for p in result.problems)]))
    if not results and not args.json:
        print(f"{args.file} holds no workflows")
    return 0 if all(r.valid for r in results.values()) else 1


def _read_tree(path: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}") from None
    import yaml  # only for a YAML file: `podium serve` never loads it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CommandError(f"{path} is not valid YAML: {exc}") from None


async def _validate(store: Store, args: argparse.Namespace) -> int:
    tree = _read_tree(args.file)
    from server.results import check_plan

    async with Engine(store, Registry(store)) as engine:
        result = await check_plan(engine, tree)
    if args.json:
        _print_json(result.model_dump(mode="json"))
    elif result.valid:
        print("valid; tools resolve to: " + ", ".join(f"{ref} -> {v}" for ref, v in result.lock.items()))
    else:
        print("\n".join(["invalid:", *(f"  - {p}" for p in result.problems)]))
    return 0 if result.valid else 1


async def _gates_list(store: Store, args: argparse.Namespace) -> int:
    status = None if args.status == "all" else args.status
    found = [gate_detail(g) for g in await store.gates.find(status, limit=args.limit)]
    return _emit(args, GateList(gates=found), gates_table(found))


async def _gates_show(store: Store, args: argparse.Namespace) -> int:
    gate = gate_detail(await store.gates.get(args.gate_id))
    return _emit(args, gate, gate_report(gate))


async def _gates_decide(store: Store, args: argparse.Namespace) -> int:
    payload = None
    if getattr(args, "payload", None) is not None:
        try:
            payload = json.loads(args.payload)
        except ValueError as exc:
            raise CommandError(f"--payload is not valid JSON: {exc}") from None
    decision = "reject" if args.action == "reject" else "approve"
    gate = gate_detail(await gates.decide(store, args.gate_id, decision, args.as_name, args.comment, payload))
    return _emit(args, gate, f"gate {gate.gate_id}: {gate.decision} by {gate.decided_by}; run {gate.run_id} goes on")


async def _stats(store: Store, args: argparse.Namespace) -> int:
    try:
        result = await read_stats(store, args.since, args.tool)
    except WindowError as exc:
        raise CommandError(f"--since {exc}") from None
    return _emit(args, result, stats_report(result))


async def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from storage import migrate, parse_database_url

    db = parse_database_url(settings.database_url)
    if db.path is not None:
        db.path.parent.mkdir(parents=True, exist_ok=True)
    before = await migrate.current_revision(db)
    await migrate.upgrade(db)
    after = await migrate.current_revision(db)
    print(f"{db.display}: at {after}" + (" (already)" if before == after else f" (was {before or 'empty'})"))
    return 0


async def _db_current(settings: Settings, args: argparse.Namespace) -> int:
    from storage import migrate, parse_database_url

    db = parse_database_url(settings.database_url)
    if db.path is not None and not db.path.exists():
        raise CommandError(f"no database at {db.path} (`podium db upgrade` creates it)")
    current = await migrate.current_revision(db)
    state = "up to date" if current == migrate.HEAD else ("empty" if current is None else "needs `podium db upgrade`")
    if args.json:
        current_ok = current == migrate.HEAD
        _print_json({"database": db.display, "current": current, "head": migrate.HEAD, "up_to_date": current_ok})
    else:
        print(f"{db.display}: revision {current or '-'}; this version's schema is {migrate.HEAD}: {state}")
    return 0


HANDLERS: dict[tuple[str, str | None], Callable[[Store, argparse.Namespace], Awaitable[int]]] = {
    ("runs", "list"): _runs_list,
    ("runs", "show"): _runs_show,
    ("runs", "tail"): _runs_tail,
    ("runs", "cancel"): _runs_cancel,
    ("runs", "retry"): _runs_reopen,
    ("runs", "skip"): _runs_reopen,
    ("tools", "list"): _tools_list,
    ("tools", "show"): _tools_show,
    ("tools", "add"): _tools_add,
    ("tools", "import-mcp"): _tools_import_mcp,
    ("tools", "deprecate"): _tools_deprecate,
    ("breakers", "list"): _breakers_list,
    ("events", "emit"): _events_emit,
    ("events", "list"): _events_list,
    ("events", "show"): _events_show,
    ("triggers", "list"): _triggers_list,
    ("triggers", "show"): _triggers_show,
    ("triggers", "add"): _triggers_add,
    ("triggers", "enable"): _triggers_toggle,
    ("triggers", "disable"): _triggers_toggle,
    ("breakers", "reset"): _breakers_reset,
    ("workflows", "list"): _workflows_list,
    ("workflows", "show"): _workflows_show,
    ("workflows", "add"): _workflows_add,
    ("workflows", "validate"): _workflows_validate,
    ("validate", None): _validate,
    ("stats", None): _stats,
    ("gates", "list"): _gates_list,
    ("gates", "show"): _gates_show,
    ("gates", "approve"): _gates_decide,
    ("gates", "reject"): _gates_decide,
}


def _serve(settings: Settings, args: argparse.Namespace, loop: dict[str, Any]) -> int:
    from server.app import build_server
    from server.lifespan import Running
    from server.serving import return_freed_memory, serve_http, serve_stdio
    from server.telemetry import start_tracing

    if args.http and args.host not in LOOPBACK and not args.host.startswith("127.") and not settings.principal:
        raise CommandError(
            f"refusing to serve HTTP on {args.host}: with no principals configured, Podium binds only to loopback. "
            "Add [[principal]] entries (name, roles, token_sha256) to podium.toml to serve other hosts with "
            "bearer tokens, or use --host 127.0.0.1"
        )
    if args.registry:
        settings = settings.model_copy(update={"registry": (*settings.registry, *args.registry)})
    return_freed_memory()
    running = Running()
    http_url = f"http://{args.host}:{args.port}" if args.http else None
    # over stdio the client's initialize and tools/list are answered while the store opens (``lifespan``); a
    # registry file that cannot load fails here first, so that no client is answered by a server about to stop
    loaded = None if args.http else [load_registry_file(path) for path in settings.registry]
    server = build_server(settings, http_url=http_url, running=running, background=not args.http, registry_files=loaded)
    stop_tracing = start_tracing()
    try:
        if args.http:
            anyio.run(serve_http, server, running, args.host, args.port, settings, backend_options=loop)
        else:
            anyio.run(serve_stdio, server, running, settings.max_request_bytes, backend_options=loop)
    finally:
        if stop_tracing is not None:
            stop_tracing()  # the spans still in the exporter's queue go out
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``podium`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    server_command: list[str] = []
    if "import-mcp" in argv and "--" in argv[argv.index("import-mcp") :]:
        cut = argv.index("--", argv.index("import-mcp"))
        argv, server_command = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    args.server_command = server_command
    try:
        configure_logging(logging.WARNING)
    except LogFormatError as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return 2
    try:
        settings = Settings.load(args.config, database_url=args.db)
        configure_logging(logging.WARNING, settings.log_format)  # a config file may name it too
        loop = loop_options(settings.event_loop)
        if args.command == "serve":
            logging.getLogger().setLevel(logging.INFO)
            return _serve(settings, args, loop)
        if args.command == "db":
            command = _db_upgrade if args.action == "upgrade" else _db_current
            return anyio.run(command, settings, args, backend_options=loop)
        if args.command == "demo":
            from server.demo import run_demo

            return anyio.run(run_demo, settings, backend_options=loop)
        handler = HANDLERS[(args.command, getattr(args, "action", None))]
        args.settings = settings  # for the handlers that start an engine
        return anyio.run(_with_store, settings, lambda store: handler(store, args), backend_options=loop)
    except (CommandError, ConfigError) as exc:
        print(f"podium: {exc}", file=sys.stderr)
        return 2
    except (PatternError, RegistryError, StorageError) as exc:
        print(f"podium: {getattr(exc, 'message', str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
