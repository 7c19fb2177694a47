"""``podium stats`` and ``podium://stats``: per tool version calls, error rate, p50/p95/p99 and cost; runs per
pattern by status. The figures come from ``storage.stats``; this module parses the window and shapes the answer."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from server.render import table
from server.results import iso

if TYPE_CHECKING:
    from storage.stats import Stats

if TYPE_CHECKING:
    from storage import Store

DEFAULT_WINDOW = "24h"
MAX_WINDOW_S = 366 * 86_400
RESOURCE_TOOLS = 100
"""The tool versions ``podium://stats`` lists at most (the most called); ``podium stats`` lists them all."""
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class WindowError(ValueError):
    """A ``--since`` value that is not a window."""


def parse_window(text: str) -> float | None:
    """``30s``, ``15m``, ``1h``, ``7d`` as seconds; ``all`` as None (every record).

    Raises:
        WindowError: anything else, or a window over a year (use ``all``).
    """
    if text.strip().lower() == "all":
        return None
    found = _WINDOW.match(text)
    if found is None:
        raise WindowError(f"{text[:40]!r} is not a window: a number and a unit s, m, h or d (30m, 1h, 7d), or all")
    seconds = float(found[1]) * _UNIT_S[found[2]]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise WindowError(f"{text!r}: a window is more than 0 and at most 366d (or all, for every record)")
    return seconds


class ToolStatsInfo(BaseModel):
    tool: str
    version: str
    calls: int = Field(description="Tool steps that finished (completed or failed).")
    failed: int
    error_rate: float = Field(description="failed / calls, 0 to 1.")
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cost: float = Field(description="The calls' cost, summed.")


class StatsResult(BaseModel):
    since: str | None = Field(description="The window's start (ISO-8601 UTC), or null: every record.")
    until: str
    tools: list[ToolStatsInfo] = Field(description="Per tool version, by name.")
    tools_omitted: int = Field(0, description="Tool versions left out (the least called), past the listing's limit.")
    runs: dict[str, dict[str, int]] = Field(description="Per pattern (the run's root step kind): runs by status.")


def stats_result(stats: Stats) -> StatsResult:
    return StatsResult(
        since=iso(stats.since),
        until=iso(stats.until) or "",
        tools=[
            ToolStatsInfo(
                tool=t.tool,
                version=t.version,
                calls=t.calls,
                failed=t.failed,
                error_rate=round(t.error_rate, 4),
                p50_ms=round(t.percentiles_s[0] * 1000, 3),
                p95_ms=round(t.percentiles_s[1] * 1000, 3),
                p99_ms=round(t.percentiles_s[2] * 1000, 3),
                cost=round(t.cost, 6),
            )
            for t in stats.tools
        ],
        runs=stats.runs,
    )


async def read_stats(
    store: Store, window: str = DEFAULT_WINDOW, tool: str | None = None, limit: int | None = None
) -> StatsResult:
    """The statistics over the last ``window`` (see ``parse_window``), of one tool (``name``, or ``name@version``
    for one version) or all; with ``limit``, of at most that many tool versions, the most called."""
    seconds = parse_window(window)
    since = None if seconds is None else store.now() - seconds
    name, _, version = (tool or "").partition("@")
    result = stats_result(await store.stats.read(since, name or None))
    if version:
        result.tools = [t for t in result.tools if t.version == version]
    if limit is not None and len(result.tools) > limit:
        kept = {id(t) for t in sorted(result.tools, key=lambda t: -t.calls)[:limit]}
        result.tools_omitted = len(result.tools) - limit
        result.tools = [t for t in result.tools if id(t) in kept]
    return result


def stats_report(result: StatsResult) -> str:
    """``podium stats`` for people: a table of tools, then runs per pattern."""
    window = f"since {result.since}" if result.since is not None else "all records"
    lines = [f"tool calls {window} (to {result.until})"]
    if not result.tools:
        lines.append("no tool step finished in this window")
    else:
        rows = [
            [
                f"{t.tool}@{t.version}",
                t.calls,
                f"{t.error_rate:.1%}",
                _ms(t.p50_ms),
                _ms(t.p95_ms),
                _ms(t.p99_ms),
                f"{t.cost:g}",
            ]
            for t in result.tools
        ]
        lines.append(table(["TOOL", "CALLS", "ERRORS", "P50", "P95", "P99", "COST"], rows))
        if result.tools_omitted:
            lines.append(f"... and {result.tools_omitted} less called tool versions")
    lines.append("")
    if not result.runs:
        lines.append("no run was created in this window")
    else:
        statuses = sorted({status for counts in result.runs.values() for status in counts})
        rows = [
            [pattern, sum(counts.values()), *(counts.get(status, 0) for status in statuses)]
            for pattern, counts in sorted(result.runs.items())
        ]
        lines.append(table(["PATTERN", "RUNS", *(s.upper() for s in statuses)], rows))
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.1f}ms"
