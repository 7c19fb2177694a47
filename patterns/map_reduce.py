"""Map-reduce: one map step per item (or per chunk of ``chunk_size`` items), then an optional reduce step."""

from __future__ import annotations

import dataclasses
from typing import Any

from patterns.base import NodeRunner
from patterns.errors import InvalidStep, LimitExceeded, describe_path
from patterns.fan_out import Node, gather_then_reduce
from patterns.state import Scope
from patterns.steps import MapReduceStep, join


async def run_map_reduce(runner: NodeRunner, step: MapReduceStep, path: str, value: Any, scope: Scope) -> Any:
    spec = step.map_reduce
    state = runner.state
    items = value
    if "items" in spec.model_fields_set:
        items = runner.evaluate(spec, spec.items, path, dataclasses.replace(scope, input=value), "map items")
    if not isinstance(items, list):
        raise InvalidStep(
            f"step {describe_path(path)}: map_reduce needs a list of items (from `items` or its input), "
            f"got {type(items).__name__}",
            step=path,
        )
    size = spec.chunk_size
    chunks: list[Any] = items if size == 1 else [items[i : i + size] for i in range(0, len(items), size)]
    if len(chunks) > state.limits.max_fan_out:
        raise LimitExceeded(
            "max_fan_out",
            state.limits.max_fan_out,
            f"step {describe_path(path)} maps {len(chunks)} {'items' if size == 1 else 'chunks'}",
            step=path,
        )
    nodes = [
        Node(spec.map, join(path, "map", str(i)), chunk, dataclasses.replace(scope, input=value, prev=None, item=chunk))
        for i, chunk in enumerate(chunks)
    ]
    return await gather_then_reduce(
        runner, path, nodes, spec, spec.item_timeout_s, spec.reduce, join(path, "reduce"), value, scope
    )
