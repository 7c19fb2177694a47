"""A run with its child runs, for people: ``podium runs show`` and ``podium demo`` draw each child under the
delegation step that started it, and the runs started under it otherwise apart, down the run tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.render import run_report
from server.results import RunResult, child_info, run_result
from storage import RunRecord, StepRecord

if TYPE_CHECKING:
    from storage import Store

SHOWN_CHILDREN = 20
"""Child runs drawn per run (``podium runs list --parent RUN_ID`` lists them all)."""
MAX_SHOWN_DEPTH = 4


async def run_tree_report(store: Store, record: RunRecord, steps: list[StepRecord]) -> str:
    """``record`` as ``run_report`` draws it, with every step, the whole output and its child runs nested."""
    nested, others = await child_lines(store, record, steps, 1)
    return run_report(whole(record, steps), nested, others)


def whole(record: RunRecord, steps: list[StepRecord] | None = None) -> RunResult:
    """A run as a person asked for it: every step and the whole output."""
    return run_result(record, steps, step_limit=None, max_output_bytes=None)


async def child_lines(
    store: Store, record: RunRecord, steps: list[StepRecord], depth: int
) -> tuple[dict[str, list[str]], list[str]]:
    """The child runs of ``record`` drawn as text: those of its delegation steps under their step (by path), the
    others (started with ``options.parent_run_id``) apart; each with its own steps and children, recursively."""
    children = await store.list_runs(None, SHOWN_CHILDREN + 1, record.id)
    if not children:
        return {}, []
    at_step = {
        str(s.attempts[0]["child_run_id"]): s.path
        for s in steps
        if s.kind == "workflow" and s.attempts and "child_run_id" in s.attempts[0]
    }
    nested: dict[str, list[str]] = {}
    others: list[str] = []
    for child in sorted(children[:SHOWN_CHILDREN], key=lambda c: (c.created_at, c.id)):
        child_steps = await store.get_steps(child.id, payloads=False)
        inner, apart = await child_lines(store, child, child_steps, depth + 1) if depth < MAX_SHOWN_DEPTH else ({}, [])
        workflow = child_info(child).workflow
        report = run_report(whole(child, child_steps), inner, apart, what="child run")
        lines = report.splitlines()
        if workflow is not None:
            lines[0] = lines[0].replace(":", f" ({workflow}):", 1)
        path = at_step.get(child.id)
        (nested.setdefault(path, []) if path is not None else others).extend(lines)
    if len(children) > SHOWN_CHILDREN:
        others.append(f"... more child runs: podium runs list --parent {record.id} --limit 1000")
    return nested, others
