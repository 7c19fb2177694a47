"""The engine: starts runs of step trees, executes them in its task group, and reports their outcome.

Typical use::

    async with Store.open("sqlite:///podium.db") as store, Engine(store, Registry(store)) as engine:
        run = await engine.run({"chain": [{"tool": "extract-invoice@^1"}, {"tool": "validate-invoice"}]},
                               {"text": "..."})
        print(run.status, run.output)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from opentelemetry.trace import Span

from patterns import contracts, gates, tracing, triggers
from patterns.breakers import Breakers
from patterns.drain import Drain
from patterns.errors import (
    ContractViolation,
    ErrorType,
    GateRejected,
    GateTimedOut,
    GateWaiting,
    InvalidStep,
    LimitExceeded,
    NeedsAttention,
    PatternError,
    RunCancelled,
    ShuttingDown,
    UnknownTool,
    describe_path,
)
from patterns.events import Level, RunEvents
from patterns.limits import Limits
from patterns.planning import WORKFLOW_LOCK_PREFIX, Plan, RunOptions, checked_tree, effective_limits, plan
from patterns.runner import Runner
from patterns.scheduler import schedule
from patterns.settled import SettledStatuses
from patterns.state import RunState, Scope
from patterns.steps import AnyStep, ChildBudget, WorkflowStep
from patterns.validate import static_tool_steps
from patterns.workflows import plan_workflow, workflow_lock
from registry import Registry
from registry.downstream import Downstream
from registry.errors import RegistryError
from registry.models import BreakerSettings, PythonProvider, ToolSpec
from registry.providers import Invoker
from registry.resolve import parse_ref
from registry.schemacheck import SchemaCheck
from storage import (
    GateRecord,
    NewRun,
    RunRecord,
    RunUpdate,
    StepRecord,
    StorageError,
    dumps,
    loads,
)
from storage.errors import NoBudget
from storage.grants import ENDED as LEDGER_ENDED, Draw, share_of_cost, share_of_steps
from storage.records import DELEGATION_KEY_PREFIX

if TYPE_CHECKING:
    from storage import Store

# how loud a run's ending is, for whoever follows it (the others: error)
_SETTLED_LEVELS: dict[str, Level] = {"succeeded": "info", "partial": "warning", "cancelled": "warning"}

__all__ = ["RUN_STATUSES", "SETTLED", "UNSETTLED", "Engine", "Plan", "RunOptions", "new_run_id"]

log = logging.getLogger("podium.engine")

RUN_STATUSES = (
    "pending",
    "running",
    "waiting",
    "succeeded",
    "partial",
    "failed",
    "rejected",
    "cancelled",
    "timed_out",
    "needs_attention",
)
DEFAULT_LEASE_S = 15.0
CHILD_POLL_S = 0.25  # how often a parent looks at a child run executing elsewhere
SETTLED = frozenset({"succeeded", "partial", "failed", "rejected", "cancelled", "timed_out", "needs_attention"})
UNSETTLED = tuple(s for s in RUN_STATUSES if s not in SETTLED)


def _hold(chain: tuple[RunState, ...], steps: int, cost: float, granted: tuple[int, float] = (0, 0.0)) -> None:
    """Hold ``steps`` and ``cost`` pending in the states of ``chain`` (negative: release them), and add ``granted``
    to what they hold for good."""
    for state in chain:
        state.pending_steps += steps
        state.pending_cost += cost
        state.held_steps += granted[0]
        state.held_cost += granted[1]


def _child_reason(parent_id: str, reason: str) -> str:
    return f"its parent run {parent_id} was cancelled: {reason}"


def new_run_id() -> str:
    """A UUIDv7: time-ordered, so ids sort by creation."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | uuid.uuid4().int & ((1 << 76) - 1)
    value = value & ~(0x3 << 62) | 0x2 << 62
    return str(uuid.UUID(int=value))


@dataclass
class _Active:
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cancel_reason: str | None = None
    runner: Runner | None = None
    final: RunRecord | None = None
    total: int | None = None
    abandoned: bool = False
    """Another engine took the run over (this one stalled past its lease): stop, and record nothing more."""


class Engine:
    """Executes runs durably. Use as an async context manager: runs execute in its task group."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        limits: Limits | None = None,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        owner: str | None = None,
        grace_s: float = 0.0,
        recover: bool = True,
        clock: Callable[[], float] | None = None,
        breaker: BreakerSettings | None = None,
    ) -> None:
        """
        Args:
            store, registry: where runs, records and tools live.
            limits: the server's limits (callers may only lower them).
            lease_s: how long a run's lease lasts without a heartbeat; a replica that dies holds its runs at most
                this long before another claims and resumes them.
            owner: this engine's name on leases (default: host, process and a random part).
            grace_s: at shutdown, how long tool calls in flight may take to finish (no new step starts meanwhile);
                0 interrupts them at once. Either way the runs are resumable from their records.
            recover: claim and resume runs other engines left behind (expired leases, gates decided elsewhere).
                A short-lived engine, such as the CLI's, sets it False so that it never adopts work it would
                abandon when it exits.
            clock: the time deadlines, leases and gate timers are measured by (default: the store's clock), so
                that a test can move time on instead of sleeping.
            breaker: the circuit breaker settings of tools whose spec does not set its own (``[breaker]``).
        """
        self.store = store
        self.registry = registry
        self.limits = limits or Limits()
        self.lease_s = lease_s
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.grace_s = grace_s
        self.recover = recover
        self.clock = clock or store.now
        self.events = RunEvents()
        """Events of the runs this engine executes, for whoever follows one (e.g. an MCP call waiting on it)."""
        self._drain = Drain()
        self._drain_started: float | None = None
        self._active: dict[str, _Active] = {}
        self._settled = SettledStatuses()  # the step statuses of the newest runs settled here
        self._depths: dict[str, int] = {}  # how deep in its run tree each run executing here is (0: a root)
        self.downstream = Downstream(registry, max_response_bytes=self.limits.max_payload_bytes)
        """Sessions to downstream MCP servers and the HTTP client, open while the engine runs."""
        self.breakers = Breakers(store, breaker or BreakerSettings(), self.owner, self.events.publish)
        """The circuit breakers of the tools its runs call (``patterns.breakers``)."""
        self._downstream_invokers: dict[str, Invoker] = {}
        self._interrupted: set[str] = set()  # runs stopped unfinished: their leases are released at exit
        self._group: anyio.abc.TaskGroup | None = None
        self._closing = False
        self._started: dict[str, float] = {}
        self._resuming: dict[str, anyio.Event] = {}  # runs being resumed here: set once launched (or not)
        self._stopping = anyio.Event()
        self._stopped = anyio.Event()

    def _invoker(self, spec: ToolSpec) -> Invoker:
        """How a step calls ``spec``: in this process (python), or through this engine's downstream sessions."""
        if isinstance(spec.provider, PythonProvider):
            return self.registry.invoker(spec)
        invoker = self._downstream_invokers.get(spec.ref)
        if invoker is None:
            invoker = self._downstream_invokers[spec.ref] = self.downstream.invoker(spec)
        return invoker

    async def __aenter__(self) -> Engine:
        await self.downstream.__aenter__()
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._closing = False
        self._drain = Drain()
        self._drain_started = None
        self._stopping = anyio.Event()
        self._stopped = anyio.Event()
        self._group.start_soon(self._background)
        return self

    async def _background(self) -> None:
        try:
            await schedule(self, self._stopping)
        finally:
            self._stopped.set()

    def active_run_ids(self) -> list[str]:
        """The runs this engine executes now."""
        return list(self._active)

    def stop_cancelled(self, record: RunRecord) -> None:
        """Stop a run executing here that another process recorded cancelled (``podium runs cancel``), or whose
        parent run was cancelled (a cascade this engine has not seen: it cancels the run and, in turn, its
        children)."""
        active = self._active.get(record.id)
        if active is None or active.cancel_reason is not None:
            return
        if record.status == "cancelled":
            self._cancelled_elsewhere(active, record)
        elif self._group is not None and record.parent_run_id is not None:
            self._group.start_soon(self._cancel_as_child, record)

    async def _cancel_as_child(self, record: RunRecord) -> None:
        assert record.parent_run_id is not None
        parent = await self.store.get_run(record.parent_run_id)
        reason = str((parent.error or {}).get("message", "cancelled")).removeprefix("cancelled: ")
        by = next((e["by"] for e in reversed(parent.history) if e.get("action") == "cancel"), None)
        await self.cancel(record.id, _child_reason(parent.id, reason), by=by)

    @staticmethod
    def _cancelled_elsewhere(active: _Active, record: RunRecord) -> None:
        message = (record.error or {}).get("message", "cancelled by another process")
        active.cancel_reason = str(message).removeprefix("cancelled: ")
        active.scope.cancel()

    def abandon(self, run_id: str) -> None:
        """Stop executing a run whose lease another engine took over, without recording anything more for it."""
        active = self._active.get(run_id)
        if active is not None and not active.abandoned:
            log.warning(
                "run %s: another engine took over its lease (this one stalled); stopping it here",
                run_id,
                extra={"run_id": run_id},
            )
            active.abandoned = True
            active.scope.cancel()

    # -- delegation --------------------------------------------------------------------------------------------

    async def _depth(self, run_id: str | None) -> int:
        """How many runs ``run_id`` is below its run tree's root (0: a root; -1: no run)."""
        depth = -1
        while run_id is not None and depth <= self.limits.max_run_depth:
            run_id = (await self.store.get_run(run_id)).parent_run_id
            depth += 1
        return depth

    async def _delegate(
        self, parent: RunRecord, state: RunState, path: str, step: WorkflowStep, value: Any
    ) -> RunRecord:
        """Start (or re-attach to) the child run of a delegation step and wait until it finishes. Its budget is
        drawn from what the parent has left and held back from the parent while it runs; what it used is then the
        parent's to count (see ``patterns.delegation``)."""
        known = self._depths.get(parent.id)
        if known is None:  # resumed here: its depth is the store's to tell
            known = self._depths[parent.id] = await self._depth(parent.id)
        depth = known + 1
        if depth >= state.limits.max_run_depth:
            raise LimitExceeded(
                "max_run_depth",
                state.limits.max_run_depth,
                f"step {describe_path(path)} would start a run {depth + 1} deep in its run tree",
                step=path,
            )
        steps_left = state.max_steps - state.steps_used - state.held_steps
        asked = step.budget or ChildBudget()
        steps = steps_left if asked.max_steps is None else min(asked.max_steps, steps_left)
        if steps < 1:
            raise LimitExceeded(
                "max_steps", state.max_steps, f"step {describe_path(path)} has no steps left to give a child run"
            )
        cost = None
        if state.max_cost is not None:
            cost = max(0.0, state.max_cost - state.cost_used - state.held_cost)
            cost = cost if asked.max_cost is None else min(asked.max_cost, cost)
        elif asked.max_cost is not None:
            cost = asked.max_cost
        time_left = None if parent.deadline_at is None else max(0.001, parent.deadline_at - self.clock())
        deadline = step.deadline_s if time_left is None else min(step.deadline_s or time_left, time_left)
        pinned = parent.lock.get(f"{WORKFLOW_LOCK_PREFIX}{step.workflow}")
        ref = step.workflow if pinned is None else f"{parse_ref(step.workflow).name}@{pinned}"
        options = RunOptions(
            idempotency_key=f"{DELEGATION_KEY_PREFIX}{parent.id}:{path}",  # a replayed parent finds its child
            parent_run_id=parent.id,
            deadline_s=deadline,
            max_steps=steps,
            max_cost=cost,
            principal=parent.principal,
        )
        # A step with no record from before this run was resumed cannot have started a child yet, except in the
        # moment before its record was written: creating the run with the same key then finds that child.
        child = await self.start_workflow(ref, value, options, look_up_key=path in state.records, delegated=True)
        state.update(path, attempts=({"child_run_id": child.id, "workflow": ref},))
        finished = await self._finished(child.id)
        # What the child's run tree did while executing under this run here was counted as it went (``ancestors``);
        # the rest (before a crash, or executed elsewhere) is counted now that it has ended. A resumed run replays
        # its finished delegation steps through here too, so their children count again after a restart.
        counted = state.counted_for.pop(child.id, (0, 0.0))
        state.steps_used += finished.usage_steps - int(counted[0])
        state.cost_used += finished.usage_cost - counted[1]
        return finished

    async def sync_budgets(self) -> None:
        """The heartbeat's budget pass: write the usage of runs executing here that changed since it was last
        written (a child drawing from one of them elsewhere sees it), and read what runs started under them hold
        of their budgets (``storage.ledger``)."""
        states = {run_id: active.runner.state for run_id, active in self._active.items() if active.runner is not None}
        for run_id, state in states.items():
            if (state.steps_used, state.cost_used) != state.usage_written:
                state.usage_written = (state.steps_used, state.cost_used)
                self.store.submit_run(
                    RunUpdate(run_id, usage_steps=state.steps_used, usage_cost=state.cost_used, owner=self.owner)
                )
        for run_id, (steps, cost) in (await self.store.ledger.held(list(states))).items():
            states[run_id].held_steps, states[run_id].held_cost = steps, cost

    async def _finished(self, run_id: str) -> RunRecord:
        """The child run once it has ended; parked at a gate or waiting for an operator is not ended. Recovery
        leaves a child of a running parent to the parent (``LeaseStore.claim_expired``), so a child nobody executes
        is resumed here, under its parent."""
        while True:
            record = await self.wait(run_id, timeout_s=CHILD_POLL_S)
            if record.status in SETTLED and record.status != "needs_attention":
                return record
            if not self.is_active(run_id):
                if record.status == "running" and (record.lease_expires_at or 0.0) < self.clock():
                    await self.resume(run_id)
                if not self.is_active(run_id):
                    await anyio.sleep(CHILD_POLL_S)

    async def _confirm_lease(self, run_id: str) -> None:
        """Return if this engine still holds the run; otherwise stop the run (cancelled, if that is why)."""
        if await self.store.leases.extend(run_id, self.owner, self.lease_s):
            return
        record = await self.store.get_run(run_id)
        active = self._active.get(run_id)
        if active is not None and record.status == "cancelled" and record.lease_owner == self.owner:
            self._cancelled_elsewhere(active, record)  # recorded as cancelled, step records included
        else:
            self.abandon(run_id)
        await anyio.sleep_forever()  # the run's cancellation ends this wait

    @property
    def draining(self) -> bool:
        """Whether the engine is shutting down: it takes no new runs and starts no new steps."""
        return self._closing

    def drain(self) -> None:
        """Begin a graceful shutdown: refuse new runs, stop adopting runs, hold every run before its next step.

        Tool calls in flight go on; leaving the ``async with`` block waits for them up to ``grace_s`` (counted from
        the first call of ``drain``), then interrupts what is left and releases the leases.
        """
        if self._drain_started is None:
            self._drain_started = time.monotonic()
        self._closing = True
        self._drain.start()

    async def finish_in_flight(self) -> None:
        """Drain, then wait until no tool call is in flight or the grace period (counted from ``drain``) ends."""
        self.drain()
        assert self._drain_started is not None
        left = self._drain_started + self.grace_s - time.monotonic()
        if self._active and left > 0:
            with anyio.move_on_after(left):
                await self._drain.idle()

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop: runs still executing are interrupted, not cancelled; their records let them resume later."""
        assert self._group is not None
        with anyio.CancelScope(shield=True):
            await self.finish_in_flight()
            if self._drain.inflight:
                log.warning("interrupting %d tool call(s) still running after the grace", self._drain.inflight)
            # let the scheduler finish its pass: cancelling a database call midway can wedge its connection
            self._stopping.set()
            with anyio.move_on_after(10):
                await self._stopped.wait()
        self._group.cancel_scope.cancel()
        try:  # under an outer cancellation (a stop signal), leaving the group re-raises it: release regardless
            await self._group.__aexit__(None, None, None)
        finally:
            self._group = None
            interrupted, self._interrupted = sorted(self._interrupted | set(self._active)), set()
            with anyio.CancelScope(shield=True):
                try:  # hand the interrupted runs to another replica now rather than when their leases run out
                    await self.store.leases.release(self.owner, interrupted)
                except StorageError as exc:
                    log.warning("could not release leases: %s", exc.message)
            await self.downstream.__aexit__(None, None, None)  # stops the downstream servers it started

    # -- planning --------------------------------------------------------------------------------------------

    def effective_limits(self, options: RunOptions) -> Limits:
        """The server's limits lowered by the caller's ``limits``, budget and deadline (never raised)."""
        return effective_limits(self.limits, options)

    async def plan(self, step: Any, options: RunOptions | None = None) -> Plan:
        """Parse, check and resolve a step tree without running it (see ``patterns.planning``).

        Raises:
            InvalidStep, LimitExceeded, UnknownTool: each naming the step path and what is wrong.
        """
        return await plan(step, options or RunOptions(), self.limits, self.registry)

    # -- runs ------------------------------------------------------------------------------------------------

    async def start(self, step: Any, input: Any = None, options: RunOptions | None = None) -> RunRecord:
        """Create a run and start executing it. Returns at once with the run (``running``).

        A repeated ``idempotency_key`` returns the run it first created instead of a new one.
        """
        options = options or RunOptions()
        if options.idempotency_key is not None:
            existing = await self.store.find_run_by_key(options.idempotency_key)
            if existing is not None:
                return existing
        plan = await self.plan(step, options)
        return await self._create(
            step if isinstance(step, dict) else plan.step.model_dump(mode="json", exclude_unset=True),
            input,
            plan,
            plan.lock,
            options,
        )

    async def emit(
        self,
        type: str,
        payload: Any = None,
        *,
        key: str | None = None,
        event_id: str | None = None,
        source: str = "api",
    ) -> dict[str, Any]:
        """Take an event: start the workflows of the triggers it matches (see ``patterns.triggers``)."""
        return await triggers.emit(self, type, payload, key=key, event_id=event_id, source=source)

    async def fire_due_triggers(self) -> int:
        """Start the runs of debounced triggers whose time has come (``patterns.triggers.fire_due``)."""
        return await triggers.fire_due(self)

    async def start_workflow(
        self,
        ref: str,
        input: Any = None,
        options: RunOptions | None = None,
        *,
        look_up_key: bool = True,
        delegated: bool = False,
    ) -> RunRecord:
        """Start a run of the workflow ``ref`` (``name@spec``) with ``input``, checked against its input schema.
        The run's lock holds the workflow's version beside its tools'.

        Raises:
            UnknownTool (no such workflow, or version), ContractViolation (the input), and as ``start``.
        """
        options = options or RunOptions()
        if options.idempotency_key is not None and look_up_key:  # else creating the run finds an existing one
            existing = await self.store.find_run_by_key(options.idempotency_key)
            if existing is not None:
                return existing
        try:
            spec = await self.registry.workflow(ref)
        except RegistryError as exc:
            raise UnknownTool(exc.message) from None
        if spec.input_schema is not None:
            problem = SchemaCheck.of(spec.input_schema).problem(input)
            if problem is not None:
                raise ContractViolation(f"the input of workflow {spec.ref} breaks its input_schema {problem}")
        plan = await plan_workflow(spec, options, self.limits, self.registry)
        queued = delegated and not look_up_key
        return await self._create(spec.step, input, plan, workflow_lock(spec, plan), options, delegated, queued)

    async def _create(
        self,
        step: dict[str, Any],
        input: Any,
        plan: Plan,
        lock: dict[str, str],
        options: RunOptions,
        delegated: bool = False,
        queued: bool = False,
    ) -> RunRecord:
        """Create the run and launch it. A run with a parent that its own delegation step did not start draws its
        budget from the parent's through the ledger (``storage.ledger``). ``queued``: the child of a delegation
        step that cannot have started it before (no record of the step): its row goes through the writer, ahead
        of its records, rather than in a transaction of its own."""
        if self._closing:
            raise ShuttingDown(
                "this server is shutting down and starts no new runs; send the request to another "
                "replica, or again once the server is back"
            )
        contracts.check_caller_payload(input, "input", plan.limits)
        depth = 0
        deadline_at = self.clock() + plan.limits.max_run_s
        if options.parent_run_id is not None:
            parent_id = options.parent_run_id
            known = self._depths.get(parent_id) if parent_id in self._active else None
            if known is None:  # not executing here: ask the store (and refuse a cancelled parent)
                parent = await self.store.get_run(parent_id)
                if parent.status == "cancelled":
                    raise InvalidStep(f"parent run {parent.id} is cancelled, so no child run can start under it")
                known = await self._depth(parent_id)
                if parent.status == "running" and parent.deadline_at is not None:
                    deadline_at = min(deadline_at, parent.deadline_at)  # no later than its running parent's
            depth = known + 1
            if depth >= plan.limits.max_run_depth:
                raise LimitExceeded(
                    "max_run_depth",
                    plan.limits.max_run_depth,
                    f"a child of run {parent_id} would be {depth + 1} deep in its run tree",
                )
        span = tracing.start_run(plan.step.kind)  # its trace is the run's: the caller's, or a new one
        new = NewRun(
            id=new_run_id(),
            step=step,
            input=input,
            lock=lock,
            limits=plan.limits.model_dump(mode="json"),
            trace_id=tracing.trace_id_of(span),
            span_id=tracing.span_id_of(span) if span.is_recording() else None,
            pattern=plan.step.kind,
            status="running",
            tags=dict(options.tags),
            idempotency_key=options.idempotency_key,
            parent_run_id=options.parent_run_id,
            principal=options.principal,
            deadline_at=deadline_at,
            lease_owner=self.owner,
            lease_expires_at=self.clock() + self.lease_s,
        )
        if queued:
            record, created = self.store.submit_new_run(new), True
        elif options.parent_run_id is None or delegated:
            record, created = await self.store.create_run(new)
        else:
            record, created = await self._create_drawing(new, options.parent_run_id, plan.limits)
        if not created:
            return record
        self._depths[record.id] = depth
        self._launch(record, plan.step, plan.specs, Limits.model_validate(record.limits), {}, span)
        return record

    def _tree_here(self, run_id: str | None) -> tuple[RunState, ...]:
        """The states of ``run_id`` and its ancestors executing with it here (empty if it does not execute here)."""
        active = self._active.get(run_id) if run_id is not None else None
        if active is None or active.runner is None:
            return ()
        return (active.runner.state, *active.runner.state.ancestors)

    @staticmethod
    def _share(chain: tuple[RunState, ...], steps: int, cost: float | None) -> tuple[int, float | None]:
        """What the runs of ``chain`` (executing here) can give a child as a first grant, by what they know now:
        the store gives at most this (``storage.ledger``)."""
        room_steps: int | None = None
        room_cost: float | None = None
        for state in chain:
            room = state.max_steps - state.steps_used - state.held_steps - state.pending_steps
            if room < 1:
                raise LimitExceeded(
                    "max_steps",
                    state.max_steps,
                    f"run {state.run_id} has no steps left to give a child run ({state.steps_used} used by it, "
                    f"{state.held_steps} held or used by runs started under it)",
                )
            room_steps = room if room_steps is None else min(room_steps, room)
            if state.max_cost is not None:
                left = max(0.0, state.max_cost - state.cost_used - state.held_cost - state.pending_cost)
                room_cost = left if room_cost is None else min(room_cost, left)
        if room_steps is not None:
            steps = share_of_steps(room_steps, 1, steps)
        if room_cost is not None:
            cost = share_of_cost(room_cost, 0.0, cost)
        return steps, cost

    async def _create_drawing(self, new: NewRun, parent_id: str, limits: Limits) -> tuple[RunRecord, bool]:
        """Create a child run that draws its budget from its parent's through the ledger. Runs of the tree that
        execute here are counted as they are now, and hold what the child may get while the store decides (no
        await between looking and holding: a step they take meanwhile cannot use the same units)."""
        chain = self._tree_here(parent_id)
        steps, cost = self._share(chain, limits.max_steps, limits.max_cost_per_run)
        fresh = {state.run_id: (state.steps_used, state.cost_used) for state in chain}
        _hold(chain, steps, cost or 0.0)
        granted: tuple[int, float] = (0, 0.0)
        try:
            record, created = await self.store.create_run(new, Draw(parent_id, steps, cost, fresh))
            if created:
                granted = (record.hold_steps or 0, record.hold_cost or 0.0)
        except NoBudget as exc:
            raise LimitExceeded(exc.limit, exc.value, exc.message) from None
        finally:  # from now on they hold what the store granted (the heartbeat keeps them in step with the store)
            _hold(chain, -steps, -(cost or 0.0), granted)
        return record, created

    async def _top_up(self, record: RunRecord, state: RunState, path: str, cost: float | None) -> None:
        """Grow the grant of a run that draws its budget from the ledger, for one more step (``cost`` None) or for
        a call costing ``cost``. Raises LimitExceeded (at ``path``) if the runs it draws from have too little
        left."""
        limits = state.limits
        need_steps, need_cost = 0, 0.0
        if cost is None:
            need_steps = max(0, state.steps_used + state.held_steps + 1 - state.max_steps)
        elif state.max_cost is not None:
            need_cost = max(0.0, state.cost_used + state.held_cost + cost - state.max_cost)
        own_cost = limits.max_cost_per_run
        if (need_steps > 0 and state.max_steps >= limits.max_steps) or (
            need_cost > 0 and own_cost is not None and (state.max_cost or 0.0) >= own_cost
        ):
            return  # its own limit: taking the step fails as for any run
        if need_steps == 0 and need_cost == 0:
            return
        chain = self._tree_here(record.parent_run_id)
        fresh = {s.run_id: (s.steps_used, s.cost_used) for s in chain}
        _hold(chain, need_steps, need_cost)
        before = (state.max_steps, state.max_cost or 0.0)
        after: tuple[int, float] = before
        try:
            steps, grant_cost = await self.store.ledger.top_up(
                record.id, (need_steps, need_cost), (limits.max_steps, limits.max_cost_per_run), fresh
            )
            state.max_steps, state.max_cost = steps, grant_cost
            after = (steps, grant_cost or 0.0)
        except NoBudget as exc:
            raise LimitExceeded(exc.limit, exc.value, f"step {describe_path(path)}: {exc.message}", step=path) from None
        finally:
            _hold(chain, -need_steps, -need_cost, (after[0] - before[0], after[1] - before[1]))

    async def resume(self, run_id: str) -> RunRecord:
        """Execute an unfinished run again over its records: completed steps are not invoked again.

        The run keeps the tool versions it locked when it started, even if newer ones were registered since.
        """
        if run_id in self._active or run_id in self._resuming or self._closing:
            return await self.store.get_run(run_id)
        self._resuming[run_id] = anyio.Event()  # no await since the check: one resume at a time per run here
        try:
            record = await self.store.get_run(run_id)
            if record.status in SETTLED:
                return record
            if record.status == "waiting":
                claimed = await self.store.leases.claim_waiting(run_id, self.owner, self.lease_s)
            else:
                claimed = await self.store.leases.claim(run_id, self.owner, self.lease_s)
            if not claimed:
                return await self.store.get_run(run_id)  # another engine holds it or resumed it first
            record = await self.store.get_run(run_id)  # as claimed: its lease, and its deadline if it was waiting
            try:
                limits = Limits.model_validate(record.limits)
                tree, _ = await checked_tree(record.step, limits)  # a tree stored before a bound existed is refused
                specs: dict[str, ToolSpec] = {}
                for ref, version in record.lock.items():
                    if not ref.startswith(WORKFLOW_LOCK_PREFIX):  # the workflow's own version: its tree is stored
                        specs[ref] = await self.registry.get(parse_ref(ref).name, version)
            except (PatternError, RegistryError, ValueError) as exc:
                return await self._refuse_to_resume(record, exc)
            records = {r.path: r for r in await self.store.get_steps(run_id)}
            self._launch(record, tree, specs, limits, records)
            return record
        finally:
            self._resuming.pop(run_id).set()

    async def _refuse_to_resume(self, record: RunRecord, exc: Exception) -> RunRecord:
        """End a claimed run that cannot be executed again (its tree breaks a bound, a tool version it locked is
        gone): failed, with why, rather than claimed and dropped on every recovery pass."""
        reason = exc.message if isinstance(exc, PatternError | RegistryError) else " ".join(str(exc).split())
        log.error("run %s cannot be resumed and is marked failed: %s", record.id, reason)
        kind: ErrorType = (
            exc.type
            if isinstance(exc, PatternError)
            else "unknown_tool"
            if isinstance(exc, RegistryError)
            else "internal"
        )
        error = PatternError(f"the run cannot be resumed: {reason}", type=kind)
        now = self.clock()
        self.store.submit_run(
            RunUpdate(
                record.id,
                status="failed",
                error=error.to_dict(),
                set_error=True,
                finished_at=now,
                at=now,
                owner=self.owner,
            )
        )
        await self.store.flush(record.id)
        await self.store.cancel_open_steps(record.id, RunCancelled(f"cancelled: {error.message}").to_dict())
        await self.store.leases.release(self.owner, [record.id])
        return await self.store.get_run(record.id)

    def _launch(
        self,
        record: RunRecord,
        tree: AnyStep,
        specs: dict[str, ToolSpec],
        limits: Limits,
        records: dict[str, StepRecord],
        span: Span | None = None,
    ) -> RunState:
        """Execute a run in the engine's task group. ``span``: the span its creation started (None: a resumption,
        whose span starts a new trace linked to the run's first)."""
        if self._group is None:
            raise RuntimeError("the engine is not running; use it as `async with Engine(...) as engine`")
        state = RunState(
            run_id=record.id,
            input=record.input,
            store=self.store,
            limits=limits,
            specs=specs,
            invokers={spec.ref: self._invoker(spec) for spec in specs.values()},
            validators={
                (spec.ref, which): self.registry.validator(spec, which)
                for spec in specs.values()
                for which in ("input", "output")
            },
            records=records,
            principal=record.principal,
            drain=self._drain,
            confirm_lease=functools.partial(self._confirm_lease, record.id),
            publish=self.events.publish,
            breakers=self.breakers,
            traced=tracing.recording(),
        )
        state.delegate = functools.partial(self._delegate, record, state)
        state.held_steps, state.held_cost = record.held_steps, record.held_cost
        if record.hold_state is not None:  # its budget is a grant from the ledger, topped up as it goes
            state.max_steps = record.hold_steps or 0
            state.max_cost = record.hold_cost
            state.top_up = functools.partial(self._top_up, record, state)
        parent = self._active.get(record.parent_run_id) if record.parent_run_id is not None else None
        if parent is not None and parent.runner is not None and record.hold_state is None:
            state.ancestors = (parent.runner.state, *parent.runner.state.ancestors)
        active = self._active[record.id] = _Active(runner=Runner(state), total=static_tool_steps(tree))
        if span is None:
            span = tracing.resumed_run(tree.kind, record.trace_id, record.span_id)
        self._group.start_soon(self._traced, record, tree, state, active, span)
        return state

    async def _traced(self, record: RunRecord, tree: AnyStep, state: RunState, active: _Active, span: Span) -> None:
        with tracing.running(span, record.id, record.trace_id):
            await self._execute(record, tree, state, active)
            final = active.final
            if final is not None:
                tracing.ended(span, final.status, final.error)

    async def _execute(self, record: RunRecord, tree: AnyStep, state: RunState, active: _Active) -> None:
        store = self.store
        runner = active.runner
        assert runner is not None
        deadline = record.deadline_at - self.clock() if record.deadline_at is not None else float("inf")
        status: str = "failed"
        output_json: str | None = None
        error: PatternError | None = None
        finished = False  # False when the engine's shutdown interrupted the run: it stays resumable
        self._started[record.id] = record.started_at or self.clock()
        # only the start time: the run is `running` already (created so, or claimed so), and writing the status
        # again could undo a cancellation recorded meanwhile by another process
        store.submit_run(RunUpdate(record.id, started_at=self._started[record.id]))
        try:
            with active.scope:
                with anyio.move_on_after(deadline) as timer:
                    output = await runner.run_node(tree, "", record.input, Scope(input=record.input))
                    output_json = dumps(output)
                    status = "partial" if state.missing else "succeeded"
            if active.abandoned:
                return  # the engine that took the run over records it from now on
            if active.scope.cancelled_caught:
                status, error = "cancelled", RunCancelled(f"cancelled: {active.cancel_reason}")
            elif timer.cancelled_caught:
                status, error = "timed_out", self._deadline_error(record, state.limits)
            finished = True
        except GateWaiting:
            status, finished = "waiting", True
        except NeedsAttention as exc:
            status, error, finished = "needs_attention", exc, True
        except GateRejected as exc:
            status, error, finished = "rejected", exc, True
        except GateTimedOut as exc:
            status, error, finished = "timed_out", exc, True
        except PatternError as exc:
            status, error, finished = "failed", exc, True
        except StorageError as exc:
            log.error("run %s: %s", record.id, exc.message)
            status, error, finished = (
                "failed",
                PatternError("internal error: the run's records could not be saved"),
                True,
            )
        except Exception:
            log.exception("run %s failed with an unexpected error", record.id)
            error = PatternError("internal error while executing the run (see the server log)")
            finished = True
        finally:
            with anyio.CancelScope(shield=True):
                if finished:
                    active.final = await self._settle(record, state, status, output_json, error)
                    final = active.final
                    if final is not None and final.status in SETTLED and not self._collected_here(record):
                        self._settled.keep(final, state.statuses)  # durable: its settling waited for them
                else:
                    if not active.abandoned:
                        self._interrupted.add(record.id)
                    await store.flush()
                active.done.set()
                self._active.pop(record.id, None)
                self._depths.pop(record.id, None)
                state.release()

    async def _settle(
        self, record: RunRecord, state: RunState, status: str, output_json: str | None, error: PatternError | None
    ) -> RunRecord | None:
        """Write the run's outcome and wait until it is durable. Returns the settled record, or None if it could
        not be saved (readers then see the database's state)."""
        if error is not None:
            state.cancel_live("", error if error.type == "cancelled" else RunCancelled(f"cancelled: {error.message}"))
        if status == "cancelled":
            await self.store.gates.expire(record.id, error.message if error else "run cancelled")
        now = self.clock()
        finished_at = None if status == "waiting" else now
        time_left_s = None
        if status == "waiting" and record.deadline_at is not None:  # waiting for a person is not execution time
            time_left_s = max(0.0, record.deadline_at - now)
        change = RunUpdate(
            record.id,
            status=status,
            output_json=output_json,
            set_output=True,
            error=None if error is None else error.to_dict(),
            set_error=True,
            missing=list(state.missing),
            usage_steps=state.steps_used,
            usage_cost=state.cost_used,
            finished_at=finished_at,
            at=now,
            owner=self.owner,  # fenced: an engine that lost the run's lease cannot overwrite the new owner's outcome
            time_left_s=time_left_s,
        )
        self.store.submit_run(change)
        try:
            if not self._collected_here(record):
                await self.store.flush(record.id)  # durability barrier before a settled run is reported
            if record.hold_state == "open" and status in LEDGER_ENDED:
                await self.store.ledger.settle(record.id)  # else the scheduler's sweep settles it
        except StorageError as exc:
            log.error("run %s could not be settled durably: %s", record.id, exc.message)
            return None
        if status != "waiting":
            level: Level = _SETTLED_LEVELS.get(status, "error")
            gaps = f"; missing: {', '.join(state.missing[:5])}{' ...' if len(state.missing) > 5 else ''}"
            told = f": {error.message}" if error is not None else gaps if state.missing else ""
            state.tell("settled", level, f"run {record.id} {status}{told}", None if error is None else error.step)
        return dataclasses.replace(
            record,
            status=status,
            output=None if output_json is None else loads(output_json),
            error=change.error,
            missing=list(state.missing),
            usage_steps=state.steps_used,
            usage_cost=state.cost_used,
            started_at=record.started_at or self._started.pop(record.id, now),
            finished_at=finished_at,
            updated_at=now,
        )

    def _collected_here(self, record: RunRecord) -> bool:
        """Whether the run is the child of a delegation step of a run executing here. Its outcome then goes to
        that step, not to a caller, and needs no barrier of its own: the writer commits in order, so whatever the
        parent records after it is durable only once the child's outcome is."""
        parent = record.parent_run_id
        key = record.idempotency_key
        return (
            parent is not None and parent in self._active and key is not None and key.startswith(DELEGATION_KEY_PREFIX)
        )

    @staticmethod
    def _deadline_error(record: RunRecord, limits: Limits) -> PatternError:
        return LimitExceeded("max_run_s", limits.max_run_s, f"run {record.id} ran out of time")

    async def wait(self, run_id: str, timeout_s: float | None = None) -> RunRecord:
        """The run once it settles, or as it is when ``timeout_s`` passes."""
        active = self._active.get(run_id)
        if active is not None:
            with anyio.move_on_after(timeout_s if timeout_s is not None else float("inf")):
                await active.done.wait()
            if active.final is not None:
                return active.final
        return await self.store.get_run(run_id)

    async def run(self, step: Any, input: Any = None, options: RunOptions | None = None) -> RunRecord:
        """Start a run and wait until it settles."""
        record = await self.start(step, input, options)
        return await self.wait(record.id)

    async def cancel(self, run_id: str, reason: str | None = None, *, by: str | None = None) -> RunRecord:
        """Cancel a run and, in turn, its child runs (``parent_run_id``): in-flight steps stop at once and are
        recorded ``cancelled``. A settled run is left as it is, but its unsettled children are still cancelled.
        ``by`` (who asked) is recorded in the run's history."""
        reason = reason or "cancelled by request"
        if by is not None and (await self.store.get_run(run_id)).status not in SETTLED:
            # recorded before the run is seen cancelled, so whoever carries the cancellation on finds who asked;
            # the first to record it is kept
            await self.store.append_history(run_id, {"action": "cancel", "by": by, "reason": reason}, once=True)
        record = await self._cancel_one(run_id, reason)
        for child in await self.store.child_runs(run_id, UNSETTLED):
            await self.cancel(child.id, _child_reason(run_id, reason), by=by)
        return record

    async def _cancel_one(self, run_id: str, reason: str) -> RunRecord:
        resuming = self._resuming.get(run_id)
        if resuming is not None:  # being resumed here: cancel it once it runs, not before (the launch would win)
            await resuming.wait()
        active = self._active.get(run_id)
        if active is not None:
            active.cancel_reason = reason
            active.scope.cancel()
            await active.done.wait()
            return await self.store.get_run(run_id)
        record = await self.store.get_run(run_id)
        if record.status in SETTLED:
            return record
        await self.store.gates.expire(run_id, reason)
        error = RunCancelled(f"cancelled: {reason}")
        now = self.clock()
        cancelled = RunUpdate(run_id, status="cancelled", error=error.to_dict(), set_error=True, finished_at=now)
        self.store.submit_run(cancelled)
        await self.store.flush(run_id)
        if record.lease_expires_at is None or record.lease_expires_at < now:
            # nobody executes it (its owner died or let it go): close the records it left open; a live owner closes
            # its own when it sees the cancellation
            await self.store.cancel_open_steps(run_id, error.to_dict())
        return await self.store.get_run(run_id)

    async def decide_gate(
        self, gate_id: str, decision: str, by: str, comment: str | None = None, payload: Any = None
    ) -> GateRecord:
        """Decide a gate as ``by`` (see ``gates.decide``: who may, and every refusal) and resume its run, here or,
        if another engine holds it, there. Returns the decided gate."""
        decided = await gates.decide(self.store, gate_id, decision, by, comment, payload)
        await self.resume(decided.run_id)
        return decided

    async def get(self, run_id: str) -> RunRecord:
        return await self.store.get_run(run_id)

    async def steps(self, run_id: str, *, payloads: bool = True) -> list[StepRecord]:
        """A run's step records (without inputs and outputs when ``payloads`` is False), once written."""
        await self.store.flush()
        return await self.store.get_steps(run_id, payloads=payloads)

    async def step_overview(
        self, record: RunRecord, pick: Callable[[list[tuple[str, str]]], list[str]], children: int = 0
    ) -> tuple[list[tuple[str, str]], list[StepRecord], list[RunRecord]]:
        """Every step's ``(path, status)``, the records ``pick`` chooses and the first ``children`` child runs
        (``Store.step_overview``) of the run as ``record`` shows it, once written. For a run that settled here
        (and has not changed since) the statuses are those the engine kept, not read back."""
        kept = self._settled.get(record)
        if kept is not None:
            return await self.store.step_overview(record.id, pick, children, statuses=kept)
        await self.store.flush()
        return await self.store.step_overview(record.id, pick, children)

    def is_active(self, run_id: str) -> bool:
        return run_id in self._active

    def progress(self, run_id: str) -> tuple[int, int | None]:
        """Tool steps finished so far by a run executing here, and how many there will be when that is known."""
        active = self._active.get(run_id)
        if active is None or active.runner is None:
            return 0, None
        return active.runner.state.steps_done, active.total

    def live(self, record: RunRecord) -> RunRecord:
        """``record`` with the usage of a run executing here as it is now (tool steps finished, cost spent); the
        stored usage of a run is written when it stops."""
        active = self._active.get(record.id)
        if active is None or active.runner is None or record.status in SETTLED:
            return record
        state = active.runner.state
        now = self.clock()
        return dataclasses.replace(record, usage_steps=state.steps_done, usage_cost=state.cost_used, updated_at=now)
