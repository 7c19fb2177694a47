"""Per-run state: the specs the run is locked to, usage against limits, outputs by id, and its step records.

Records are written through the store's group-commit writer. A record stays *live* from ``begin`` until it is
finished; whoever handles a cancellation finishes the live records under the cancelled path, so a cancelled or
timed-out subtree is recorded as such rather than left ``started``. Live records are indexed by path prefix, so
finishing a subtree costs time in proportion to what it holds, not to everything in flight.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from patterns import contracts, tracing
from patterns.breakers import Breakers
from patterns.drain import Drain
from patterns.errors import LimitExceeded, PatternError, describe_path
from patterns.events import EventKind, Level, Listener, RunEvent, ignore
from patterns.limits import Limits
from patterns.steps import WorkflowStep
from registry.models import ToolSpec
from registry.providers import Invoker
from registry.schemacheck import SchemaCheck
from storage import STEP_CANCELLED, STEP_COMPLETED, STEP_FAILED, STEP_STARTED, RunRecord, StepRecord, StepWrite

if TYPE_CHECKING:
    from storage import Store


@dataclass(frozen=True, slots=True)
class Scope:
    """The template context a step sees, apart from the run-wide ``steps`` and ``run``."""

    input: Any
    prev: Any = None
    item: Any = None
    results: Any = None
    feedback: Any = None


class LiveRecords:
    """Step records begun and not yet finished, by path, with the paths in flight under each path prefix."""

    __slots__ = ("_children", "_writes")

    def __init__(self) -> None:
        self._writes: dict[str, StepWrite] = {}
        self._children: dict[str, set[str]] = {}  # a path prefix -> the prefixes one segment longer, in flight

    def __contains__(self, path: str) -> bool:
        return path in self._writes

    def __len__(self) -> int:
        return len(self._writes)

    def get(self, path: str) -> StepWrite | None:
        return self._writes.get(path)

    def put(self, path: str, write: StepWrite) -> None:
        known = path in self._writes
        self._writes[path] = write
        if known:
            return
        child = path
        while child:  # link the path to its ancestors, up to the first already linked
            parent = child.rpartition("/")[0]
            siblings = self._children.get(parent)
            if siblings is None:
                siblings = self._children[parent] = set()
            elif child in siblings:
                break
            siblings.add(child)
            child = parent

    def pop(self, path: str) -> StepWrite | None:
        write = self._writes.pop(path, None)
        if write is None:
            return None
        node = path
        while node and node not in self._writes and not self._children.get(node):
            self._children.pop(node, None)
            parent = node.rpartition("/")[0]
            siblings = self._children.get(parent)
            if siblings is None:
                break
            siblings.discard(node)
            node = parent
        return write

    def under(self, prefix: str) -> list[str]:
        """The live paths equal to ``prefix`` or below it (``prefix`` ``""``: all of them)."""
        found: list[str] = []
        pending = [prefix]
        while pending:
            node = pending.pop()
            if node in self._writes:
                found.append(node)
            pending.extend(self._children.get(node, ()))
        return found


Delegate = Callable[[str, WorkflowStep, Any], Awaitable[RunRecord]]


@dataclass
class RunState:
    run_id: str
    input: Any
    store: Store
    limits: Limits
    specs: dict[str, ToolSpec]
    invokers: dict[str, Invoker]
    validators: dict[tuple[str, str], SchemaCheck | None]
    drain: Drain
    """The engine's: while it drains for shutdown, no new step starts."""
    confirm_lease: Callable[[], Awaitable[None]]
    """Awaited before a non-idempotent call: returns while this engine holds the run's lease, never otherwise."""
    records: dict[str, StepRecord] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    """Every step record's status by path, as this engine wrote it (and as it found it, resuming the run)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    steps_used: int = 0
    cost_used: float = 0.0
    steps_done: int = 0
    """Tool steps finished so far (completed, failed or cancelled), for progress and live usage."""
    bytes_used: int = 0
    max_steps: int = 0
    max_cost: float | None = None
    live: LiveRecords = field(default_factory=LiveRecords)
    cost_scopes: dict[str, float] = field(default_factory=dict)
    last_output: tuple[Any, str] | None = None
    last_input: tuple[Any, str] | None = None
    principal: str = "local"
    spare_workers: int = 0
    """Workers parallel composites may add beyond their first, run-wide: nested fan-outs share them."""
    publish: Listener = ignore
    """Where the run's events go (the engine's RunEvents)."""
    delegate: Delegate | None = None
    """The engine's: start (or re-attach to) a delegation step's child run and wait until it finishes."""
    ancestors: tuple[RunState, ...] = ()
    """The states of this run's parent, grandparent, ... while they execute in the same engine: every step and
    cost is counted against each of their budgets too, at once."""
    held_steps: int = 0
    """What runs started under this one through the budget ledger (``storage.ledger``) hold of its budget."""
    held_cost: float = 0.0
    pending_steps: int = 0
    """Held for a child run being created through the ledger here, until the store says what it granted."""
    pending_cost: float = 0.0
    top_up: Callable[[str, float | None], Awaitable[None]] | None = None
    """For a run whose budget is a grant from the ledger (``storage.ledger``): grow it for one more step (None) or
    for a call costing that much, or raise LimitExceeded."""
    breakers: Breakers | None = None
    """The engine's circuit breakers (``patterns.breakers``); None: none are kept."""
    traced: bool = False
    """Whether its steps open OpenTelemetry spans (``patterns.tracing``: a tracer provider is installed)."""
    usage_written: tuple[int, float] = (0, 0.0)
    """The usage the heartbeat last wrote to the run's row."""
    counted_for: dict[str, list[float]] = field(default_factory=dict)
    """Per child run of a delegation step: the [steps, cost] its run tree counted into this run as it went."""
    limiter: anyio.Semaphore = field(init=False)
    run_info: dict[str, Any] = field(init=False)
    _missing_seen: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.limiter = anyio.Semaphore(self.limits.max_concurrency)  # no owner to look up per call
        self.spare_workers = self.limits.max_concurrency
        self.run_info = {"id": self.run_id, "input": self.input}
        self.max_steps = self.limits.max_steps
        self.max_cost = self.limits.max_cost_per_run
        # usage already spent by an earlier execution of this run counts against its limits
        for record in self.records.values():
            self.statuses[record.path] = record.status
            self.bytes_used += len(record.output_json or "")
            if record.kind == "tool" and record.status != STEP_STARTED:
                self.steps_used += 1
                self.steps_done += 1
                self.cost_used += record.cost

    def release(self) -> None:
        """Drop the payloads this state holds once its run has stopped: frames of cancelled tasks that refer to
        it may wait in reference cycles for the collector, and should not keep megabytes of outputs meanwhile."""
        self.outputs.clear()
        self.records.clear()
        self.statuses.clear()
        self.last_output = self.last_input = None
        self.run_info = {"id": self.run_id}
        self.input = None

    def context(self, scope: Scope) -> dict[str, Any]:
        return {
            "input": scope.input,
            "prev": scope.prev,
            "steps": self.outputs,
            "item": scope.item,
            "results": scope.results,
            "feedback": scope.feedback,
            "missing": self.missing_so_far(),
            "run": self.run_info,
        }

    def tell(self, kind: EventKind, level: Level, message: str, step: str | None = None) -> None:
        """Publish an event of this run to whoever follows it (and, traced, on the current span: a retry, a
        fallback, a gap, a gate that waits)."""
        self.publish(RunEvent(self.run_id, kind, level, message, step))
        if self.traced:
            tracing.event(f"podium.{kind}", message=message, **{tracing.STEP_PATH: step})

    def missing_so_far(self) -> list[str]:
        """The gaps recorded so far, as templates see them: a list that never changes once handed out."""
        if len(self._missing_seen) != len(self.missing):
            self._missing_seen = list(self.missing)
        return self._missing_seen

    # -- usage -----------------------------------------------------------------------------------------------

    def short_of(self, cost: float | None) -> bool:
        """Whether this run's grant is too small for one more tool step (``cost`` None), or for a call costing
        ``cost`` of the step it has taken (then ``top_up``)."""
        if self.top_up is None:
            return False
        if cost is None:
            return self.steps_used + self.held_steps + self.pending_steps >= self.max_steps
        spent = self.cost_used + self.held_cost + self.pending_cost
        return self.max_cost is not None and spent + cost > self.max_cost + 1e-12

    def take_step(self, path: str) -> None:
        """Count a tool step against this run's ``max_steps`` and every ancestor's executing here: all of them
        have room, or none counts it (no await in between: siblings cannot take the same last step)."""
        chain = (self, *self.ancestors)
        for state in chain:
            if state.steps_used + state.held_steps + state.pending_steps >= state.max_steps:
                whose = "" if state is self else f" (its ancestor run {state.run_id} has none left)"
                held = f"; runs started under it hold {state.held_steps}" if state.held_steps else ""
                raise LimitExceeded(
                    "max_steps",
                    state.max_steps,
                    f"step {describe_path(path)} would be step {state.steps_used + 1}{whose}{held}",
                    step=path,
                )
        self.steps_used += 1
        for below, state in zip(chain, self.ancestors, strict=False):
            state.steps_used += 1
            state.counted_for.setdefault(below.run_id, [0, 0.0])[0] += 1

    def charge(self, spec: ToolSpec, path: str) -> None:
        chain = (self, *self.ancestors)
        for state in chain:
            spent = state.cost_used + state.held_cost + state.pending_cost
            if state.max_cost is not None and spent + spec.cost > state.max_cost + 1e-12:
                whose = "the run's" if state is self else f"its ancestor run {state.run_id}'s"
                held = f" (runs started under it hold {state.held_cost:g})" if state.held_cost else ""
                raise LimitExceeded(
                    "max_cost_per_run",
                    state.max_cost,
                    f"calling {spec.ref} (cost {spec.cost}) at step {describe_path(path)} would bring {whose} cost "
                    f"to {spent + spec.cost:g}{held}",
                    step=path,
                )
        self.cost_used += spec.cost
        for below, state in zip(chain, self.ancestors, strict=False):
            state.cost_used += spec.cost
            state.counted_for.setdefault(below.run_id, [0, 0.0])[1] += spec.cost
        for prefix in self.cost_scopes:  # loops with a cost budget of their own (refine) see their spending
            if path.startswith(prefix):
                self.cost_scopes[prefix] += spec.cost

    def store_bytes(self, text: str | None, path: str, what: str) -> None:
        """Count a payload the run is about to store against ``max_run_bytes``."""
        if text is None:
            return
        self.bytes_used += len(text)
        if self.bytes_used > self.limits.max_run_bytes:
            raise LimitExceeded(
                "max_run_bytes",
                self.limits.max_run_bytes,
                f"storing the {what} of step {describe_path(path)} ({len(text)} bytes) would bring the run's stored "
                f"payloads to {self.bytes_used} bytes",
                step=path,
            )

    def payload_json(self, value: Any, path: str, what: str) -> str:
        """``value`` as JSON, within the payload limits. In a chain the next step's input is the object the previous
        step returned, and the branches of a fan-out share one input, so that text is reused, not made again."""
        for known in (self.last_output, self.last_input):
            if known is not None and known[0] is value:
                return known[1]
        text = contracts.to_json(value, path, what, self.limits)
        self.last_input = (value, text)
        return text

    # -- records ---------------------------------------------------------------------------------------------

    def begin(
        self, path: str, kind: str, input_json: str | None, tool: str | None = None, version: str | None = None
    ) -> None:
        write = StepWrite(
            run_id=self.run_id,
            path=path,
            kind=kind,
            status=STEP_STARTED,
            started_at=time.time(),
            tool=tool,
            version=version,
            input_json=input_json,
        )
        self.live.put(path, write)
        self.statuses[path] = STEP_STARTED
        self.store.submit_step(write)

    def update(self, path: str, **changes: Any) -> None:
        """Write new facts about a live record (attempts so far, cost) without finishing it."""
        write = self.live.get(path)
        if write is not None:
            write = dataclasses.replace(write, **changes)
            self.live.put(path, write)
            self.store.submit_step(write)

    def finish(
        self,
        path: str,
        status: str,
        *,
        output_json: str | None = None,
        error: PatternError | None = None,
        missing: tuple[str, ...] = (),
        **changes: Any,
    ) -> None:
        write = self.live.pop(path)
        if write is None:
            return
        if write.kind == "tool":
            self.steps_done += 1
        self.statuses[path] = status
        # built field by field: this runs once per step, and dataclasses.replace costs several times more
        self.store.submit_step(
            StepWrite(
                run_id=write.run_id,
                path=path,
                kind=write.kind,
                status=status,
                started_at=write.started_at,
                tool=changes.get("tool", write.tool),
                version=changes.get("version", write.version),
                input_json=write.input_json,
                output_json=output_json,
                error=None if error is None else error.to_dict(),
                missing=missing,
                attempts=changes.get("attempts", write.attempts),
                cost=changes.get("cost", write.cost),
                finished_at=time.time(),
            )
        )

    def complete(self, path: str, output_json: str, missing: tuple[str, ...] = (), **changes: Any) -> None:
        self.finish(path, STEP_COMPLETED, output_json=output_json, missing=missing, **changes)

    def fail(self, path: str, error: PatternError, **changes: Any) -> None:
        self.finish(path, STEP_CANCELLED if error.type == "cancelled" else STEP_FAILED, error=error, **changes)

    def cancel_live(self, prefix: str, error: PatternError) -> None:
        """Finish every live record at or under ``prefix`` with ``error`` (cancelled, or the timeout that hit)."""
        for path in self.live.under(prefix):
            self.fail(path, error)
