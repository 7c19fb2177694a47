"""Sequential chain: each step gets the previous step's output (the chain's input for the first)."""

from __future__ import annotations

import dataclasses
from typing import Any

from patterns.base import NodeRunner
from patterns.state import Scope
from patterns.steps import ChainStep, join


async def run_chain(runner: NodeRunner, step: ChainStep, path: str, value: Any, scope: Scope) -> Any:
    output = value
    prev: Any = None
    for index, child in enumerate(step.chain):
        inner = dataclasses.replace(scope, input=value, prev=prev)
        output = await runner.run_node(child, join(path, str(index)), output, inner)
        prev = output
    return output
