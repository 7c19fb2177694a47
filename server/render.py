"""Plain-text rendering for people: run tables and step trees (``--json`` gives the MCP field names instead)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from server.results import GateDetail, RunResult, RunSummary, StepInfo, ToolInfo, epoch


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def runs_table(runs: Sequence[RunSummary]) -> str:
    if not runs:
        return "no runs"
    now = time.time()
    return table(
        ["RUN", "STATUS", "STEPS", "COST", "DURATION", "AGE", "ERROR"],
        [
            [
                r.run_id,
                r.status,
                r.usage.steps,
                f"{r.usage.cost:g}",
                _ms(r.usage.duration_ms),
                _age(now - epoch(r.created_at)),
                "" if r.error is None else f"{r.error.type}: {_short(r.error.message, 60)}",
            ]
            for r in runs
        ],
    )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parent(path: str, known: set[str]) -> str:
    """The nearest recorded ancestor of ``path`` ("" is the root)."""
    parts = path.split("/")
    for end in range(len(parts) - 1, 0, -1):
        candidate = "/".join(parts[:end])
        if candidate in known:
            return candidate
    return ""


def _label(step: StepInfo, note: str | None) -> str:
    what = step.tool if step.version is None else f"{step.tool}@{step.version}"
    attempts = f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}" if step.attempts else ""
    duration = "" if note is not None and note.startswith("skip") else _ms(step.duration_ms)
    parts = [step.path or "(root)", what or "", step.status, attempts, duration, f"({note})" if note else ""]
    return "  ".join(p for p in parts if p)


def step_tree(
    steps: Sequence[StepInfo],
    notes: Mapping[str, str] | None = None,
    nested: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The step records as a tree: path, tool@version, status, attempts, duration, and errors under their step;
    ``notes`` adds a word to some steps (``skipped by ana``), ``nested`` lines under some (a child run's tree)."""
    notes = notes or {}
    nested = nested or {}
    known = {s.path for s in steps}
    children: dict[str, list[StepInfo]] = {}
    root: StepInfo | None = None
    for step in steps:
        if step.path == "":
            root = step
        else:
            children.setdefault(_parent(step.path, known), []).append(step)
    lines: list[str] = []

    def emit(step: StepInfo, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(prefix + branch + _label(step, notes.get(step.path)))
        inner = prefix + ("" if top else ("   " if last else "│  "))
        if step.error is not None:
            lines.append(inner + f"   ! {step.error.type}: {_short(step.error.message, 110)}")
        lines.extend(inner + "   " + line for line in nested.get(step.path, ()))
        kids = sorted(children.get(step.path, []), key=lambda s: _sort_key(s.path))
        for i, kid in enumerate(kids):
            emit(kid, inner, i == len(kids) - 1, False)

    if root is not None:
        emit(root, "", True, True)
    else:
        tops = sorted(children.get("", []), key=lambda s: _sort_key(s.path))
        for i, step in enumerate(tops):
            emit(step, "", i == len(tops) - 1, False)
    return "\n".join(lines)


def _sort_key(path: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in path.split("/")]


def run_report(
    result: RunResult,
    nested: Mapping[str, Sequence[str]] | None = None,
    children: Sequence[str] = (),
    *,
    what: str = "run",
) -> str:
    """A run for people: its outcome, step tree and history. ``nested``: lines to draw under some steps (the child
    runs of delegation steps); ``children``: lines for child runs started otherwise (``options.parent_run_id``)."""
    lines = [
        f"{what} {result.run_id}: {result.status}  "
        f"({result.usage.steps} step{'' if result.usage.steps == 1 else 's'}, cost {result.usage.cost:g}, "
        f"{_ms(result.usage.duration_ms)})"
    ]
    if what == "run" and result.trace_id:
        lines.append(f"trace {result.trace_id}")
    if result.error is not None:
        where = f" at step {result.error.step}" if result.error.step else ""
        lines.append(f"error{where}: {result.error.type}: {result.error.message}")
    if result.missing:
        lines.append(f"missing (data unavailable): {', '.join(result.missing)}")
    if result.steps:
        done = {"skip": "skipped", "retry": "retried"}
        notes = {
            path: f"{done.get(e['action'], e['action'])} by {e['by']}"
            for e in result.history
            for path in e.get("steps", [])
        }
        lines.append(step_tree(result.steps, notes, nested))
    if children:
        lines.extend(["child runs started under it:", *("  " + line for line in children)])
    if result.history:
        lines.extend(["history:", *(_event(e) for e in result.history)])
    if what == "run":
        lines.append(f"next: {result.next_action}")
    return "\n".join(lines)


def _event(entry: dict[str, Any]) -> str:
    """One operator action: ``2026-11-21 10:02:03  retry by alice: 1, 2/fan_out/0 (reason)``."""
    steps = ", ".join(entry.get("steps") or [])
    line = f"  {_when(entry['at'])}  {entry['action']} by {entry['by']}" + (f": {steps}" if steps else "")
    if entry.get("action") == "skip":
        line += f" with output {json.dumps(entry.get('output'), ensure_ascii=False)}"
    return line + (f" ({entry['reason']})" if entry.get("reason") else "")


def _when(at: float | str) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch(at) if isinstance(at, str) else at))


def tools_table(tools: Sequence[ToolInfo]) -> str:
    if not tools:
        return "no tools registered (add some with `podium tools add FILE`)"
    return table(
        ["TOOL", "VERSION", "VERSIONS", "IDEMPOTENT", "COST", "TAGS", "DESCRIPTION"],
        [
            [
                t.name,
                t.version + (" (deprecated)" if t.deprecated else ""),
                len(t.versions),
                "yes" if t.idempotent else "no",
                f"{t.cost:g}",
                ",".join(t.tags),
                _short(t.description, 50),
            ]
            for t in tools
        ],
    )


def _left(seconds: float) -> str:
    """Time left before an SLA, rounded down: ``23h 59m``, ``12m 5s``, ``overdue``."""
    if seconds <= 0:
        return "overdue"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def gates_table(gates: Sequence[GateDetail]) -> str:
    if not gates:
        return "no gates"
    now = time.time()
    return table(
        ["GATE", "STATUS", "TITLE", "ASKED", "LEVEL", "TIME LEFT", "OPENED", "RUN"],
        [
            [
                g.gate_id,
                g.status if g.decision is None else f"{g.status} ({g.decision})",
                _short(g.title, 40),
                ", ".join(g.approvers) or "anyone",
                g.level,
                _left(epoch(g.sla_at) - now) if g.status == "pending" else "-",
                _age(now - epoch(g.created_at)),
                g.run_id,
            ]
            for g in gates
        ],
    )


def gate_report(gate: GateDetail) -> str:
    now = time.time()
    lines = [
        f"gate {gate.gate_id}: {gate.status}" + (f" ({gate.decision} by {gate.decided_by})" if gate.decision else ""),
        f"title: {gate.title}",
        f"run: {gate.run_id} at step {gate.path or '(root)'}",
        f"asked: {', '.join(gate.approvers) or 'anyone but the requester'}"
        + (f"   then: {', '.join(gate.escalate_to[gate.level :])}" if gate.escalate_to[gate.level :] else ""),
        f"time left: {_left(epoch(gate.sla_at) - now)}   on timeout: {gate.on_timeout}"
        if gate.status == "pending"
        else f"comment: {gate.comment or '-'}",
        "",
        "brief:",
        *(f"  {line}" for line in (gate.brief or "-").splitlines()),
        "",
        "payload:",
        *(f"  {line}" for line in json.dumps(gate.payload, indent=2, ensure_ascii=False).splitlines()),
        "",
        "history:",
        *(
            f"  {_when(e['at'])}  {e['event']}"
            + "".join(f"  {k}={v}" for k, v in e.items() if k not in ("at", "event"))
            for e in gate.history
        ),
    ]
    return "\n".join(lines)
