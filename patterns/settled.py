"""The step statuses of runs that settled in this engine, kept for a while for whoever asks about them next.

The caller that waited for a run (an MCP call, ``podium runs wait``) is told how many of its steps ended in each
status, and shown a few of them: read back from the database, that is a scan of every step record of the run, a
cost that grows with the run however few steps are shown. The engine that executed the run knows those statuses
already; it keeps them for the newest settled runs, at most ``limit`` ``(path, status)`` pairs in all (a run with
more is not kept), and gives them out only for the very version of the run they describe: a run changed since
(reopened by an operator, settled again) has another ``updated_at`` and is read from the database.
"""

from __future__ import annotations

from collections import OrderedDict

from storage import RunRecord

KEPT_PAIRS = 50_000
"""At most this many ``(path, status)`` pairs in all (a few megabytes at worst)."""

Statuses = list[tuple[str, str]]


class SettledStatuses:
    """The oldest kept go first when full; ``get`` answers only for the version of the run that was kept."""

    def __init__(self, limit: int = KEPT_PAIRS) -> None:
        self._limit = limit
        # per run: its updated_at, its paths, their statuses; tuples of strings, which the garbage collector stops
        # tracking the first time it meets them, so that the runs kept are not walked by every full collection
        self._kept: OrderedDict[str, tuple[float, tuple[str, ...], tuple[str, ...]]] = OrderedDict()
        self._pairs = 0

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def pairs(self) -> int:
        return self._pairs

    def keep(self, record: RunRecord, statuses: dict[str, str]) -> None:
        """Keep the statuses of ``record``'s steps as the run settled; the oldest kept go to make room."""
        self.drop(record.id)
        if len(statuses) > self._limit:
            return
        self._kept[record.id] = (record.updated_at, tuple(statuses), tuple(statuses.values()))
        self._pairs += len(statuses)
        while self._pairs > self._limit:
            _, (_, dropped, _) = self._kept.popitem(last=False)
            self._pairs -= len(dropped)

    def get(self, record: RunRecord) -> Statuses | None:
        """The statuses kept for this version of the run, or None."""
        kept = self._kept.get(record.id)
        if kept is None or kept[0] != record.updated_at:
            return None
        return list(zip(kept[1], kept[2], strict=True))

    def drop(self, run_id: str) -> None:
        kept = self._kept.pop(run_id, None)
        if kept is not None:
            self._pairs -= len(kept[1])
