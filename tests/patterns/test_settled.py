"""What the engine keeps of the runs that settled in it: their steps' statuses, given out for the very version of the
run they describe and read back from the database for any other; at most so many pairs in all."""

from __future__ import annotations

import time

import pytest

from patterns import Engine
from patterns.settled import SettledStatuses
from server.results import pick_steps
from storage import RunRecord, StepWrite, Store

pytestmark = pytest.mark.anyio


def record(run_id: str, updated_at: float = 1.0) -> RunRecord:
    return RunRecord(
        id=run_id, status="succeeded", step={"chain": []}, input=None, output=None, error=None, missing=[], lock={},
        limits={}, tags={}, usage_steps=0, usage_cost=0.0, idempotency_key=None, parent_run_id=None,
        principal="local", trace_id="t", lease_owner=None, lease_expires_at=None, deadline_at=None, created_at=0.0,
        started_at=None, finished_at=None, updated_at=updated_at,
    )  # fmt: skip


def test_statuses_are_given_for_the_version_of_the_run_that_was_kept_only() -> None:
    settled = SettledStatuses(limit=10)
    settled.keep(record("r1", updated_at=5.0), {"0": "completed", "1": "failed"})

    assert settled.get(record("r1", updated_at=5.0)) == [("0", "completed"), ("1", "failed")]
    assert settled.get(record("r1", updated_at=6.0)) is None  # changed since: read from the database
    assert settled.get(record("r2", updated_at=5.0)) is None


def test_the_oldest_runs_go_first_and_a_run_over_the_limit_is_not_kept() -> None:
    settled = SettledStatuses(limit=5)
    settled.keep(record("a"), {"0": "completed", "1": "completed"})
    settled.keep(record("b"), {"0": "completed", "1": "completed"})
    settled.keep(record("c"), {"0": "completed", "1": "completed"})  # 6 pairs: "a" goes

    assert settled.get(record("a")) is None
    assert settled.get(record("b")) is not None and settled.get(record("c")) is not None
    assert (len(settled), settled.pairs) == (2, 4)

    settled.keep(record("big"), {str(n): "completed" for n in range(6)})
    assert settled.get(record("big")) is None
    assert (len(settled), settled.pairs) == (2, 4)

    settled.keep(record("b", updated_at=2.0), {"0": "failed"})  # settled again: replaces its earlier version
    assert settled.get(record("b", updated_at=2.0)) == [("0", "failed")]
    assert (len(settled), settled.pairs) == (2, 3)


async def test_a_run_that_settled_here_is_shown_as_the_database_would_show_it(engine: Engine, store: Store) -> None:
    run = await engine.run(
        {
            "chain": [
                {"tool": "double", "input": {"value": 1}},
                {"tool": "broken", "critical": False},
                {"fan_out": {"branches": [{"tool": "noop"}, {"tool": "broken", "critical": False}]}},
                {"tool": "echo", "input": {"results": {"$": "prev"}}},
            ]
        },
        {},
    )
    assert run.status == "partial"
    assert engine._settled.get(run) is not None  # this is what is checked: the kept statuses, not a read

    for limit in (0, 1, 3, 20):

        def pick(pairs: list[tuple[str, str]], limit: int = limit) -> list[str]:
            return pick_steps(pairs, limit)

        kept = await engine.step_overview(run, pick, children=limit)
        read = await store.step_overview(run.id, pick, children=limit)
        assert sorted(kept[0]) == sorted(read[0])
        assert kept[1] == read[1] and kept[2] == read[2]
        assert len(kept[1]) == min(limit, len(read[0]))


async def test_a_run_changed_since_it_settled_is_read_from_the_database(engine: Engine, store: Store) -> None:
    """An operator's retry rewrites step records and reopens the run: its new version is not the one kept."""
    run = await engine.run({"chain": [{"tool": "noop"}, {"tool": "broken", "critical": False}, {"tool": "echo"}]}, {})
    assert run.status == "partial"
    failed = next(s for s in await store.get_steps(run.id) if s.status == "failed")
    rewrite = StepWrite(
        run_id=run.id, path=failed.path, kind=failed.kind, status="cancelled", started_at=failed.started_at,
        tool=failed.tool, version=failed.version, finished_at=time.time(),
    )  # fmt: skip
    reopened = await store.reopen_run(run, {"action": "retry", "by": "ops"}, [rewrite], None)

    def every(pairs: list[tuple[str, str]]) -> list[str]:
        return pick_steps(pairs, None)

    statuses, _, _ = await engine.step_overview(reopened, every)
    assert dict(statuses)[failed.path] == "cancelled"
    # the version that settled here still gets what was kept: it describes that version
    assert dict((await engine.step_overview(run, every))[0])[failed.path] == "failed"
