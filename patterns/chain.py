"""Sequential chain: each step gets the previous step's output (the chain's input for the first).

A ``critical: false`` step that fails leaves a gap (its path in ``missing``) and passes on what flowed into it, so
the steps after it get the partial result so far rather than nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from patterns.base import NodeRunner
from patterns.state import Scope
from patterns.steps import ChainStep, join


async def run_chain(runner: NodeRunner, step: ChainStep, path: str, value: Any, scope: Scope) -> Any:
    output = value
    prev: Any = None
    missing = runner.state.missing
    for index, child in enumerate(step.chain):
        inner = dataclasses.replace(scope, input=value, prev=prev)
        child_path = join(path, str(index))
        flow = output
        output = await runner.run_node(child, child_path, flow, inner)
        if output is None and missing and missing[-1] == child_path:  # absorbed: the gap is this step
            output = flow
        prev = output
    return output
