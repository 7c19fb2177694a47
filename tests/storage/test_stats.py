"""Statistics from the step and run records: counts, error rates and nearest-rank percentiles, checked against
values computed here from the same known durations, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random

import pytest

from storage import Store
from storage.records import StepWrite
from storage.stats import PERCENTILES, nearest_rank
from tests.storage.test_store import new_run

pytestmark = pytest.mark.anyio


def expected(durations: list[float]) -> tuple[float, ...]:
    ordered = sorted(durations)
    return tuple(ordered[math.ceil(p * len(ordered)) - 1] for p in PERCENTILES)


def test_the_nearest_rank_is_the_smallest_value_with_that_share_at_or_below_it() -> None:
    assert [nearest_rank(0.5, n) for n in (1, 2, 3, 4, 100)] == [0, 0, 1, 1, 49]
    assert [nearest_rank(0.99, n) for n in (1, 100, 101, 1000)] == [0, 98, 99, 989]


async def test_stats_per_tool_version_and_per_pattern(db_url: str) -> None:
    rng = random.Random(3)
    now = 1_800_000_000.0
    versions = [("extract", "1.0.0"), ("extract", "1.1.0"), ("pay", "2.0.0")]
    durations: dict[tuple[str, str], list[float]] = {version: [] for version in versions}
    failures = dict.fromkeys(durations, 0)
    async with Store.open(db_url, clock=lambda: now) as store:
        for n in range(30):
            run_id = f"run-{n}"
            await store.create_run(new_run(run_id, pattern="chain" if n % 3 else "fan_out", status="running"))
            for index, (tool, version) in enumerate(durations):
                if tool == "pay" and n % 2:
                    continue
                took = round(rng.uniform(0.001, 2.0), 6)
                failed = rng.random() < 0.2
                durations[(tool, version)].append(took)
                failures[(tool, version)] += failed
                started = now - 3600 + n
                store.submit_step(
                    StepWrite(
                        run_id,
                        str(index),
                        "tool",
                        "failed" if failed else "completed",
                        started,
                        tool,
                        version,
                        cost=0.5,
                        finished_at=started + took,
                    )  # fmt: skip
                )
            # neither a step still running, nor one cancelled, nor a step long ago counts
            store.submit_step(StepWrite(run_id, "9", "tool", "started", now - 10, "extract", "1.0.0"))
            store.submit_step(StepWrite(run_id, "8", "tool", "cancelled", now - 10, "extract", "1.0.0"))
            store.submit_step(StepWrite(run_id, "7", "tool", "completed", now - 7200, "extract", "1.0.0",
                                        finished_at=now - 7000))  # fmt: skip
        await store.flush()
        stats = await store.stats.read(since=now - 3600)
        one = await store.stats.read(since=now - 3600, tool="pay")
        every = await store.stats.read()
    assert [(t.tool, t.version) for t in stats.tools] == list(durations)
    for figures in stats.tools:
        known = durations[(figures.tool, figures.version)]
        assert figures.calls == len(known) and figures.failed == failures[(figures.tool, figures.version)]
        assert figures.cost == pytest.approx(0.5 * len(known))
        assert figures.percentiles_s == pytest.approx(expected(known), abs=1e-6)
    assert [(t.tool, t.calls) for t in one.tools] == [("pay", 15)]
    assert every.tools[0].calls == 30 + 30  # all time: the old steps too
    assert stats.runs == {"chain": {"running": 20}, "fan_out": {"running": 10}}


async def test_no_records_no_figures(db_url: str) -> None:
    async with Store.open(db_url) as store:
        stats = await store.stats.read(since=0.0)
    assert stats.tools == [] and stats.runs == {}
