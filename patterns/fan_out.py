"""Parallel fan-out / fan-in with strategies ``all``, ``best_effort`` and ``quorum``.

``gather`` runs nodes with at most ``max_concurrency`` in flight (a pool of workers, so a 10,000-branch fan-out
holds a few dozen tasks, not 10,000), each under its own timeout, and decides the outcome. Every parallel composite
gets one worker; more come from a pool the whole run shares (``max_concurrency`` workers), taken as items wait and
given back as workers finish, so fan-outs nested three deep hold about ``max_concurrency`` tasks, not its cube:

- ``all``: a failed critical branch fails the fan-out and cancels the others; a non-critical one leaves a gap.
- ``best_effort``: failed branches leave gaps (``None`` in the results, their paths in ``missing``); it fails
  only if every branch failed.
- ``quorum``: succeeds as soon as ``quorum`` branches have, cancelling the rest; fails as soon as that is
  impossible. Its results are the successful branches' outputs, in branch order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from patterns.base import NodeRunner
from patterns.errors import GateWaiting, PatternError, RunCancelled, StepFailed, describe_path
from patterns.state import Scope
from patterns.steps import AnyStep, FanOutStep, ParallelSpec, Strategy, join


@dataclass(frozen=True, slots=True)
class Node:
    step: AnyStep
    path: str
    flow: Any
    scope: Scope


async def gather(
    runner: NodeRunner,
    path: str,
    nodes: list[Node],
    *,
    strategy: Strategy,
    quorum: int | None,
    timeout_s: float | None,
    max_concurrency: int | None,
) -> list[Any]:
    """Run ``nodes`` in parallel under ``strategy``; results come back in node order."""
    state = runner.state
    count = len(nodes)
    needed = quorum or count
    want = max(1, min(count, max_concurrency or count, state.limits.max_concurrency))
    results: list[Any] = [None] * count
    succeeded = [False] * count
    settled = [False] * count
    failures: dict[int, PatternError] = {}
    fatal: list[PatternError] = []
    parked: list[GateWaiting] = []
    next_index = 0
    running = starting = borrowed = 0
    wins = 0
    if strategy == "quorum" and count < needed:
        raise StepFailed(
            f"step {describe_path(path)}: quorum of {needed} cannot be reached with {count} "
            f"{'branch' if count == 1 else 'branches'}",
            step=path,
        )

    def stop(group: anyio.abc.TaskGroup, error: PatternError | None = None) -> None:
        if error is not None:
            fatal.append(error)
        group.cancel_scope.cancel()

    def grow(group: anyio.abc.TaskGroup) -> None:
        """Add workers while items wait that no worker is about to take: the first is this composite's own, the
        others are borrowed from the run's pool."""
        nonlocal running, starting, borrowed
        while running < want and count - next_index > starting:
            spare = running > 0
            if spare:
                if state.spare_workers <= 0:
                    return
                state.spare_workers -= 1
                borrowed += 1
            running += 1
            starting += 1
            group.start_soon(work, group, spare)

    async def work(group: anyio.abc.TaskGroup, spare: bool) -> None:
        nonlocal next_index, running, starting, borrowed, wins
        starting -= 1
        try:
            while next_index < count:
                index = next_index
                next_index += 1
                node = nodes[index]
                try:
                    results[index] = await runner.run_node(
                        node.step, node.path, node.flow, node.scope, deadline_s=timeout_s, absorb=strategy == "all"
                    )
                except GateWaiting as waiting:  # this branch waits for a human; the others go on
                    settled[index] = True
                    parked.append(waiting)
                    continue
                except PatternError as error:
                    settled[index] = True
                    failures[index] = error
                    if not error.absorbable or strategy == "all":
                        return stop(group, error)
                    if strategy == "best_effort":
                        state.missing.append(node.path)
                        state.tell("gap", "warning", f"{error.message} (best_effort: the others go on)", node.path)
                    elif count - len(failures) < needed:
                        return stop(
                            group,
                            StepFailed(
                                f"step {describe_path(path)}: quorum of {needed} can no longer be reached: "
                                f"{len(failures)} of {count} branches failed (last: {error.message})",
                                step=path,
                            ),
                        )
                    grow(group)
                    continue
                settled[index] = succeeded[index] = True
                if strategy == "quorum":
                    wins += 1
                    if wins >= needed:
                        return stop(group)
                grow(group)
        finally:
            running -= 1
            if spare:
                borrowed -= 1
                state.spare_workers += 1

    try:
        async with anyio.create_task_group() as group:
            grow(group)
    finally:  # workers cancelled before they began never ran their own `finally`: give their slots back
        state.spare_workers += borrowed

    reason = fatal[0] if fatal else None
    why = f"step {describe_path(reason.step or path)} failed" if reason else f"quorum of {needed} reached"
    for index, node in enumerate(nodes):
        if not settled[index]:
            state.cancel_live(node.path, RunCancelled(f"cancelled: {why}", step=node.path))
    # parked: the run waits at a gate; on resume, the settled branches replay from their records
    raised: Exception | None = reason or (parked[0] if parked else None)
    if raised is None and strategy == "best_effort" and count and len(failures) == count:
        first = failures[min(failures)]
        raised = StepFailed(
            f"step {describe_path(path)}: all {count} branches failed (first: {first.message})", step=path
        )
    if raised is not None:
        # The error's traceback keeps this frame, and the cancelled workers' frames, alive until the cycle
        # collector runs: let go of the branches' outputs now rather than then.
        results.clear()
        raise raised
    if strategy == "quorum":
        return [results[i] for i in range(count) if succeeded[i]]
    return results


async def gather_then_reduce(
    runner: NodeRunner,
    path: str,
    nodes: list[Node],
    spec: ParallelSpec,
    timeout_s: float | None,
    reduce: AnyStep | None,
    reduce_path: str,
    value: Any,
    scope: Scope,
) -> Any:
    """``gather`` the nodes under ``spec``'s strategy, then hand the results to ``reduce`` when there is one."""
    results = await gather(
        runner,
        path,
        nodes,
        strategy=spec.strategy,
        quorum=spec.quorum,
        timeout_s=timeout_s,
        max_concurrency=spec.max_concurrency,
    )
    if reduce is None:
        return results
    reduce_scope = dataclasses.replace(scope, input=value, prev=None, results=results)
    return await runner.run_node(reduce, reduce_path, results, reduce_scope)


async def run_fan_out(runner: NodeRunner, step: FanOutStep, path: str, value: Any, scope: Scope) -> Any:
    spec = step.fan_out
    inner = dataclasses.replace(scope, input=value, prev=None)
    nodes = [Node(branch, join(path, "fan_out", str(i)), value, inner) for i, branch in enumerate(spec.branches)]
    reduce_path = join(path, "fan_out", "reduce")
    return await gather_then_reduce(
        runner, path, nodes, spec, spec.branch_timeout_s, spec.reduce, reduce_path, value, scope
    )
