"""Runs one node of a step tree: replay, input template, timeout, criticality, and the composite's record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel

from patterns import contracts, tracing
from patterns.base import NodeRunner
from patterns.chain import run_chain
from patterns.delegation import run_delegation
from patterns.errors import GateWaiting, PatternError, RunCancelled, StepFailed, describe_path
from patterns.expressions import ExpressionError, step_error
from patterns.fan_out import run_fan_out
from patterns.gates import run_gate
from patterns.map_reduce import run_map_reduce
from patterns.refine import run_refine
from patterns.router import run_route
from patterns.state import RunState, Scope
from patterns.steps import AnyStep, GateStep, ToolStep
from patterns.templates import Template, amplifies, compile_template
from patterns.tool_step import run_tool
from storage import STEP_COMPLETED, STEP_WAITING

REPLAY_BATCH = 256
Handler = Callable[[NodeRunner, Any, str, Any, Scope], Awaitable[Any]]


class Runner:
    """Executes nodes for one run (a ``NodeRunner``). Composite handlers call back into ``run_node`` for their
    children."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.replayed = 0
        self._templates: dict[int, Template] = {}
        self._amplifying: dict[int, bool] = {}

    def evaluate(self, owner: object, template: Any, path: str, scope: Scope, what: str) -> Any:
        """The value of ``owner``'s ``template`` in ``scope``. Raises a pattern error naming the step when an
        expression fails. (Whoever stores or passes on the value encodes it, measuring it first.)"""
        try:
            value = self.template(owner, template, path)(self.state.context(scope))
        except ExpressionError as exc:
            raise step_error(exc, path, what) from None
        if self._amplifying[id(owner)]:
            contracts.check_built(value, path, what, self.state.limits)
        return value

    def template(self, owner: object, value: Any, path: str) -> Template:
        key = id(owner)
        compiled = self._templates.get(key)
        if compiled is None:
            compiled = self._templates[key] = compile_template(value, path)
            self._amplifying[key] = amplifies(value)
        return compiled

    async def run_node(
        self,
        step: AnyStep,
        path: str,
        flow: Any,
        scope: Scope,
        *,
        deadline_s: float | None = None,
        absorb: bool = True,
    ) -> Any:
        """Run ``step`` at ``path`` on ``flow`` (what flows in) and return its output.

        ``deadline_s`` bounds the whole node (a branch or item timeout). With ``absorb``, a non-critical step's
        failure is recorded as a gap (its path added to ``missing``) and the node returns ``None``.
        """
        state = self.state
        if isinstance(step, ToolStep):
            record = state.records.get(path)
            if record is not None and record.status == STEP_COMPLETED:
                self.replayed += 1
                if self.replayed % REPLAY_BATCH == 0:
                    await anyio.lowlevel.checkpoint()  # replaying thousands of records: let others in between
                output = record.output
                if step.id is not None:
                    state.outputs[step.id] = output
                return output
        value = self.evaluate(step, step.input, path, scope, "input") if step.has_input else flow
        budget = step.timeout_s if not isinstance(step, ToolStep) else None
        if deadline_s is not None:
            budget = deadline_s if budget is None else min(budget, deadline_s)
        try:
            if budget is None:
                output = await self._dispatch(step, path, value, scope)
            else:
                with anyio.CancelScope(deadline=anyio.current_time() + budget) as cancel_scope:
                    output = await self._dispatch(step, path, value, scope)
                if cancel_scope.cancelled_caught:
                    raise StepFailed(
                        f"step {describe_path(path)} timed out after {budget:g}s", step=path, type="timeout"
                    )
        except PatternError as error:
            if error.step is None:
                error.step = path
            self.finish_subtree(path, error)
            if absorb and not step.critical and error.absorbable:
                state.missing.append(path)
                state.tell("gap", "warning", f"{error.message} (critical: false: the run goes on without it)", path)
                return None
            raise
        if step.id is not None:
            state.outputs[step.id] = output
        return output

    def finish_subtree(self, path: str, error: PatternError) -> None:
        """Record ``error`` on ``path`` and ``cancelled`` on its descendants still in flight."""
        state = self.state
        if path in state.live:
            state.fail(path, error)
        state.cancel_live(path, RunCancelled(f"cancelled: step {describe_path(path)} failed ({error.type})"))

    async def _dispatch(self, step: AnyStep, path: str, value: Any, scope: Scope) -> Any:
        state = self.state
        if state.traced and (path or isinstance(step, ToolStep)):  # a composite root node's span is its run's
            spec = state.specs.get(step.tool) if isinstance(step, ToolStep) else None
            if spec is not None:
                name, tool = f"execute_tool {spec.name}", (spec.name, spec.version)
            else:
                name, tool = step.kind, None
            with tracing.step(name, state.run_id, path, tool, parked=(GateWaiting,)):
                return await self._dispatch_node(step, path, value, scope)
        return await self._dispatch_node(step, path, value, scope)

    async def _dispatch_node(self, step: AnyStep, path: str, value: Any, scope: Scope) -> Any:
        if isinstance(step, ToolStep):
            return await run_tool(self, step, path, value)
        if isinstance(step, GateStep):
            return await self._gate(step, path, value, scope)
        handler = _HANDLERS[step.kind]
        state = self.state
        before = len(state.missing)
        input_json = state.payload_json(value, path, "input")
        state.store_bytes(input_json, path, "input")
        state.begin(path, step.kind, input_json)
        output = await handler(self, step, path, value, scope)
        under = path + "/"
        missing = tuple(m for m in state.missing[before:] if not path or m.startswith(under))
        output_json = contracts.to_json(output, path, "output", state.limits)
        state.store_bytes(output_json, path, "output")
        state.complete(path, output_json, missing)
        return output

    async def _gate(self, step: GateStep, path: str, value: Any, scope: Scope) -> Any:
        state = self.state
        await state.drain.hold()  # opening a gate is new work: not while the engine drains
        input_json = state.payload_json(value, path, "input")
        state.store_bytes(input_json, path, "input")
        state.begin(path, "gate", input_json)
        try:
            output = await run_gate(self, step, path, value, scope)
        except GateWaiting:
            state.finish(path, STEP_WAITING)
            raise
        output_json = contracts.to_json(output, path, "output", state.limits)
        state.store_bytes(output_json, path, "output")
        state.complete(path, output_json)
        return output


# composite kinds and their handlers (a tool call and a gate have their own record-keeping in ``_dispatch``)
_HANDLERS: dict[str, Handler] = {
    "chain": run_chain,
    "fan_out": run_fan_out,
    "map_reduce": run_map_reduce,
    "route": run_route,
    "refine": run_refine,
    "workflow": run_delegation,
}
