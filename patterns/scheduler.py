"""The engine's background pass, a few times a second: what keeps runs moving when no request does.

- heartbeat: renew the leases of the runs executing here (a third of the lease apart); a run whose lease another
  engine took over (this one stalled past it) is stopped here without recording anything more; the runs' usage so
  far is written, and what runs started under them hold of their budgets is read (``storage.ledger``);
- recovery: claim runs whose owner stopped renewing its lease (it crashed or was killed) and resume them; settle
  the budget grants of runs that ended without their engine settling them;
- gates: reminders, escalations and time-outs that are due; runs parked at a gate decided elsewhere are resumed;
- cancellation: runs executing here that another process recorded cancelled, or whose parent run is, stop;
- triggers: debounced events whose time has come start their runs;
- breakers: the calls counted here go to the store, the breakers of the tools called here are read again, and
  those whose failure rate crossed their threshold open.

Every transition is a compare-and-set in the store, so several engines on one database do each thing once. A pass
that fails (a busy database) is logged and tried again at the next tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import anyio

from patterns import gates
from patterns.breakers import Breakers
from patterns.errors import PatternError
from patterns.events import RunEvents
from registry.errors import RegistryError
from storage import RunRecord, StorageError

if TYPE_CHECKING:
    from storage import Store

log = logging.getLogger("podium.engine")

TICK_S = 0.25
CANCEL_POLL_S = 1.0
RECOVERY_EVERY_S = 5.0


class Scheduled(Protocol):
    """What the scheduler drives: an engine."""

    store: Store
    owner: str
    lease_s: float
    recover: bool
    clock: Callable[[], float]
    events: RunEvents
    breakers: Breakers

    @property
    def draining(self) -> bool: ...

    def active_run_ids(self) -> list[str]: ...

    def abandon(self, run_id: str) -> None: ...

    def stop_cancelled(self, record: RunRecord) -> None: ...

    async def sync_budgets(self) -> None: ...

    async def resume(self, run_id: str) -> RunRecord: ...

    async def fire_due_triggers(self) -> int: ...


async def schedule(engine: Scheduled, stopping: anyio.Event) -> None:
    """Run passes until ``stopping`` is set; a pass under way when it is set completes first."""
    last_cancel_check = 0.0
    last_heartbeat = last_recovery = float("-inf")
    while not stopping.is_set():
        try:
            if time.monotonic() - last_heartbeat >= engine.lease_s / 3:
                last_heartbeat = time.monotonic()
                await _heartbeat(engine)
            adopt = engine.recover and not engine.draining  # a draining engine takes no new work
            if adopt and time.monotonic() - last_recovery >= min(engine.lease_s / 2, RECOVERY_EVERY_S):
                last_recovery = time.monotonic()
                for run_id in await engine.store.leases.claim_expired(engine.owner, engine.lease_s):
                    log.warning("resuming run %s: its owner stopped renewing its lease", run_id)
                    await engine.resume(run_id)
                await engine.store.ledger.settle_ended()
                await engine.store.breakers.prune()
            await engine.breakers.sync()
            if not engine.draining:
                await gates.tick(engine.store, engine.clock(), engine.events.publish)
                await engine.fire_due_triggers()
            if adopt:
                for run_id in await engine.store.gates.waiting_runs_with_answers():
                    await engine.resume(run_id)
            active = engine.active_run_ids()
            if active and time.monotonic() - last_cancel_check >= CANCEL_POLL_S:
                last_cancel_check = time.monotonic()
                for record in await engine.store.cancelled_among(active):
                    engine.stop_cancelled(record)
        except (StorageError, PatternError, RegistryError) as exc:  # e.g. a busy database: try again next tick
            log.warning("scheduler pass failed: %s", exc)
        with anyio.move_on_after(TICK_S):
            await stopping.wait()


async def _heartbeat(engine: Scheduled) -> None:
    await engine.store.flush()  # a run whose row waits in the writer (a delegation step's child) is not lost
    mine = engine.active_run_ids()
    held = await engine.store.leases.renew(engine.owner, mine, engine.lease_s)
    for run_id in mine:
        if run_id not in held:
            engine.abandon(run_id)
    await engine.sync_budgets()
