"""WAL checkpoints of a SQLite store, off the path of every commit.

By default the commit that takes SQLite's write-ahead log past 1,000 pages copies the log back into the database
file, and syncs it, before it returns: every few thousand step records one commit, and the run whose durability
barrier waits on it, takes milliseconds longer (``bench/mcp_bench.py`` part 2: its slowest answers).
A store's connections turn that off (``PRAGMA wal_autocheckpoint=0``, ``storage.database``) and this thread does
it instead, on its own connection: a PASSIVE checkpoint, which never waits for readers or the writer (what a
reader still uses is copied the next time). It runs at once when the step writer has written ``WAKE_RECORDS``
records since it last asked; otherwise the log is looked at once a second and checkpointed if it changed and is
at least ``SMALL_BYTES`` long, or changed and was last checkpointed ``QUIET_S`` ago (a small log is left alone, as
SQLite leaves it, rather than synced every second). The sqlite3 module releases the interpreter lock while SQLite
works, so the event loop and the writer go on meanwhile. When a store's last connection closes, SQLite checkpoints
what is left and removes the log.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger("podium.storage")

CHECK_S = 1.0  # how often the log is looked at (one stat) when the writer has not asked
WAKE_RECORDS = 4_000  # records the step writer writes before it asks for a checkpoint at once
SMALL_BYTES = 1 << 20  # a log shorter than this waits for QUIET_S (unless the writer asks)
QUIET_S = 30.0


class Checkpointer:
    """Checkpoints the write-ahead log of the SQLite file at ``path`` in a thread of its own (see the module)."""

    def __init__(self, path: Path, check_s: float = CHECK_S, wake_records: int = WAKE_RECORDS) -> None:
        self._path = path
        self._wal = Path(f"{path}-wal")
        self._check_s = check_s
        self._wake_records = wake_records
        self._written = 0  # records since the last wake-up asked for (the writer's thread only)
        self._due = threading.Event()
        self._closing = False
        self.checkpoints = 0  # how many ran
        self.rounds = 0  # how many times the thread looked at the log
        self._thread = threading.Thread(target=self._main, name="podium-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self, records: int) -> None:
        """The step writer committed ``records`` records: past ``wake_records`` since it last asked, checkpoint now
        rather than within a second. Costs an addition, and an event's ``set`` once in a few thousand records."""
        self._written += records
        if self._written >= self._wake_records:
            self._written = 0
            self._due.set()

    def close(self) -> None:
        """Stop the thread (blocking until it has; a checkpoint under way finishes first)."""
        self._closing = True
        self._due.set()
        self._thread.join()

    def _main(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        last: tuple[int, int] | None = None
        last_at = time.monotonic()
        try:
            while True:
                asked = self._due.wait(self._check_s)
                self._due.clear()
                if self._closing:
                    return
                seen = self._stat()
                self.rounds += 1
                if seen is None or seen == last:
                    continue  # no log, or unchanged since the last checkpoint
                if not asked and seen[1] < SMALL_BYTES and time.monotonic() - last_at < QUIET_S:
                    continue  # a small log: not worth a sync yet
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # e.g. the file went away; the next round tries again
                    log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
                last, last_at = seen, time.monotonic()
        finally:
            connection.close()

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self._wal)
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size
