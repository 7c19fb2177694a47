"""What a pattern's handler may use of the runner executing its run: ``NodeRunner``.

A handler (chain, fan-out, map-reduce, route, refine, gate, tool call) gets the runner, its step, the step's path,
the value that flows in and the template scope; it runs its children through ``run_node`` and returns its output.
"""

from __future__ import annotations

from typing import Any, Protocol

from patterns.errors import PatternError
from patterns.state import RunState, Scope
from patterns.steps import AnyStep


class NodeRunner(Protocol):
    state: RunState
    """The run's state: limits, usage, records, outputs by id."""

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
        """Run a child step at ``path`` on ``flow``; see ``Runner.run_node``."""
        ...

    def evaluate(self, owner: object, template: Any, path: str, scope: Scope, what: str) -> Any:
        """The value of ``owner``'s ``template`` in ``scope`` (``what`` names it in errors)."""
        ...

    def finish_subtree(self, path: str, error: PatternError) -> None:
        """Record ``error`` on ``path`` and ``cancelled`` on what is still in flight under it."""
        ...
