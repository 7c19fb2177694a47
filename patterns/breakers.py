"""Circuit breakers: stop calling a tool version that keeps failing, for every run on every replica.

A breaker is ``closed`` until, within its ``window_s``, at least ``min_calls`` calls of the tool version ended and
at least ``failure_rate`` of them failed transiently (time-outs and retryable failures; never contract violations
or permanent errors). It is then ``open`` for ``open_s``: a call fails at once with ``circuit_open`` (not retried;
the step's ``fallback``, ``critical: false`` or a best-effort strategy take it like any failure, and a route whose
case is a tool with an open breaker takes its ``default``). After ``open_s`` one call, holding a lease, probes it
(``half_open``): a success closes it, a failure opens it again for twice as long, up to ``max_open_s``.

The state lives in the store (``storage.breakers``), shared by every replica. Each engine keeps what it read in
memory and reads it again on its scheduler's pass, so a call costs no database round trip and no replica acts on
a state older than about a second; the calls it counts go to the store on the same pass, and the same pass opens a
breaker whose window crossed the threshold (a compare-and-set: replicas seeing the same failures open it once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from patterns.errors import PatternError, describe_path
from patterns.events import Level, RunEvent
from registry.models import BreakerSettings, ToolSpec
from storage import StorageError
from storage.records import CLOSED, HALF_OPEN, OPEN, BreakerRecord

if TYPE_CHECKING:
    from storage import Store

PROBE_LEASE_S = 60.0
"""How long a probe call holds its lease: another replica may probe if the first never reports."""
FORGET_AFTER_S = 3600.0
"""A tool not called for this long is no longer followed (its breaker stays in the store)."""


class CircuitOpen(PatternError):
    """A call refused because the tool version's breaker is open: not retried, taken by a fallback or default."""

    type = "circuit_open"


@dataclass
class _Followed:
    """What this engine knows of one tool version's breaker."""

    settings: BreakerSettings
    record: BreakerRecord | None = None
    calls: int = 0
    failures: int = 0
    window: tuple[int, int] = (0, 0)
    """(calls, failures) in the store's window, as last read, plus what this engine counted since."""
    last_call: float = 0.0
    caller: tuple[str, str] | None = None
    """The run and step of the last call counted here: where a trip is told."""


class Breakers:
    """An engine's view of the circuit breakers of the tools it calls."""

    def __init__(
        self,
        store: Store,
        defaults: BreakerSettings,
        owner: str,
        publish: Callable[[RunEvent], None],
    ) -> None:
        self.store = store
        self.defaults = defaults
        self.owner = owner
        self._publish = publish
        self._followed: dict[str, _Followed] = {}

    def settings(self, spec: ToolSpec) -> BreakerSettings | None:
        """The breaker settings of ``spec`` (None: it has no breaker)."""
        if spec.breaker is False:
            return None
        return spec.breaker or self.defaults

    def _follow(self, spec: ToolSpec) -> _Followed | None:
        followed = self._followed.get(spec.ref)
        if followed is None:
            settings = self.settings(spec)
            if settings is None:
                return None
            followed = self._followed[spec.ref] = _Followed(settings)
        return followed

    def is_open(self, spec: ToolSpec) -> bool:
        """Whether calls of ``spec`` are refused now (a route's case is then taken by its default)."""
        followed = self._followed.get(spec.ref)
        record = followed.record if followed is not None else None
        if record is None or record.state == CLOSED:
            return False
        until = record.open_until()
        return record.state == HALF_OPEN or (until is not None and self.store.now() < until)

    def check(self, spec: ToolSpec, path: str) -> bool:
        """Whether a call of ``spec`` may go (False), needs to probe an open breaker whose time is over (True: call
        ``probe``), or is refused (raises ``CircuitOpen``). No await: the common case costs a lookup."""
        followed = self._followed.get(spec.ref) or self._follow(spec)
        if followed is None:
            return False
        followed.last_call = time.monotonic()
        record = followed.record
        if record is None or record.state == CLOSED:
            return False
        until = record.open_until() or 0.0
        if record.state == OPEN and self.store.now() < until:
            raise self._refusal(spec, path, record, until)
        return True

    async def probe(self, spec: ToolSpec, path: str) -> int:
        """Take the probe of an open breaker whose time is over; returns its generation (report the call's
        outcome with ``settle_probe``). Raises ``CircuitOpen`` if another call probes it."""
        followed = self._follow(spec)
        assert followed is not None and followed.record is not None, "check() said a probe is due"
        record = followed.record
        try:
            probe = await self.store.breakers.take_probe(spec.ref, self.owner, PROBE_LEASE_S)
        except StorageError:
            probe = None
        if probe is None:
            raise self._refusal(spec, path, record, record.open_until() or 0.0)
        followed.record = probe
        return probe.generation

    def _refusal(self, spec: ToolSpec, path: str, record: BreakerRecord, until: float) -> CircuitOpen:
        left = max(0.0, until - self.store.now())
        why = f" ({record.reason})" if record.reason else ""
        when = f"for {left:.0f}s more" if record.state == OPEN and left > 0 else "while one call probes it"
        return CircuitOpen(
            f"step {describe_path(path)}: the circuit breaker of {spec.ref} is open{why}, so it is not called "
            f"{when}; `podium breakers reset {spec.ref}` closes it",
            step=path,
        )

    def record(self, spec: ToolSpec, failed_transiently: bool, run_id: str, path: str) -> None:
        """Count one ended call of ``spec`` (a refused one is not a call)."""
        followed = self._follow(spec)
        if followed is None:
            return
        followed.caller = (run_id, path)
        followed.calls += 1
        followed.failures += failed_transiently
        calls, failures = followed.window
        followed.window = (calls + 1, failures + failed_transiently)

    async def settle_probe(self, spec: ToolSpec, generation: int, ok: bool, run_id: str, path: str) -> None:
        """Close the breaker after a successful probe, or open it again after a failed one."""
        followed = self._follow(spec)
        if followed is None:
            return
        reason = "its probe call failed"
        changed = await self.store.breakers.settle_probe(spec.ref, generation, ok, followed.settings.max_open_s, reason)
        if changed:
            followed.record = None if ok else followed.record
            followed.window = (0, 0) if ok else followed.window
            state = "closed: its probe call succeeded" if ok else "open again: its probe call failed"
            self._tell(run_id, "info" if ok else "warning", f"circuit breaker of {spec.ref} {state}", path)

    async def sync(self) -> None:
        """The scheduler's pass: send the calls counted here to the store, read every followed breaker and its
        window, and open those whose failure rate crossed their threshold (told to the run that called last)."""
        if not self._followed:
            return
        now = self.store.now()
        bucket = self.store.breakers.bucket(now)
        counts = [(ref, bucket, f.calls, f.failures) for ref, f in self._followed.items() if f.calls]
        for f in self._followed.values():  # taken before the await: calls ending meanwhile count next time
            f.calls = f.failures = 0
        try:
            await self.store.breakers.add_calls(counts)
        except StorageError:
            for ref, _, calls, failures in counts:
                if ref in self._followed:
                    self._followed[ref].calls += calls
                    self._followed[ref].failures += failures
            raise
        stale = [ref for ref, f in self._followed.items() if time.monotonic() - f.last_call > FORGET_AFTER_S]
        for ref in stale:
            del self._followed[ref]
        since = {ref: now - f.settings.window_s for ref, f in self._followed.items()}
        records, windows = await self.store.breakers.read(since)
        for ref, f in self._followed.items():
            f.record = records.get(ref)
            f.window = windows.get(ref, (0, 0))
            calls, failures = f.window
            settings = f.settings
            closed = f.record is None or f.record.state == CLOSED
            if closed and calls >= settings.min_calls and failures / calls >= settings.failure_rate:
                reason = f"{failures} of its last {calls} calls failed"
                seen = None if f.record is None else f.record.generation
                opened = await self.store.breakers.trip(ref, seen, settings.open_s, reason)
                if opened is not None:
                    f.record = opened
                    message = f"circuit breaker of {ref} opened for {settings.open_s:g}s: {reason}"
                    if f.caller is not None:  # the run whose call tipped it: told now, and in its history
                        run_id, path = f.caller
                        self._tell(run_id, "warning", message, path)
                        entry = {"action": "breaker opened", "by": "podium", "steps": [path], "reason": message}
                        await self.store.append_history(run_id, entry)

    def _tell(self, run_id: str, level: Level, message: str, step: str | None) -> None:
        self._publish(RunEvent(run_id, "breaker", level, message, step))
