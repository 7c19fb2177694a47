"""Server-side limits. A caller may lower any of them for its run, never raise them."""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    """Hard limits on one run tree. ``None`` means unlimited (only where stated)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_steps: int = Field(10_000, ge=1, description="Tool steps one run may execute.")
    max_fan_out: int = Field(1_000, ge=1, description="Branches of one fan-out, or items of one map.")
    max_concurrency: int = Field(64, ge=1, description="Tool calls of one run in flight at once.")
    max_depth: int = Field(16, ge=1, description="Nesting depth of composite steps.")
    max_run_depth: int = Field(4, ge=1, description="Depth of a run tree: a run, its child runs, theirs, ...")
    max_iterations: int = Field(25, ge=1, description="Iterations of one refine loop.")
    max_run_s: float = Field(3600.0, gt=0, description="Wall-clock seconds one run may take.")
    max_cost_per_run: float | None = Field(None, ge=0, description="Sum of tool costs one run may spend.")
    max_payload_bytes: int = Field(1_048_576, ge=1, description="JSON size of any input or output.")
    max_payload_depth: int = Field(
        64, ge=1, le=128, description="Nesting depth of any input, output, template or gate payload (JSON)."
    )
    max_run_bytes: int = Field(
        33_554_432, ge=1, description="JSON bytes of step inputs and outputs one run may store in its records."
    )
    max_tree_nodes: int = Field(
        20_000, ge=1, description="Steps in one step tree, composites and every route case included."
    )
    allowed_tools: tuple[str, ...] = Field(("*",), description="Globs over tool names; a tool must match one.")

    def lowered(self, caller: Limits | dict[str, Any] | None) -> Limits:
        """The limits in force when a caller asks for ``caller``: the lower of each, tools allowed by both."""
        if caller is None:
            return self
        asked = caller if isinstance(caller, Limits) else Limits.model_validate({**self.model_dump(), **caller})
        values: dict[str, Any] = {}
        for name in type(self).model_fields:
            mine, theirs = getattr(self, name), getattr(asked, name)
            if name == "allowed_tools":
                values[name] = mine if theirs == ("*",) else tuple(theirs) if mine == ("*",) else _both(mine, theirs)
            elif mine is None or theirs is None:
                values[name] = theirs if mine is None else mine
            else:
                values[name] = min(mine, theirs)
        return Limits(**values)

    def allows_tool(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed_tools)


def _both(server: tuple[str, ...], caller: tuple[str, ...]) -> tuple[str, ...]:
    """Keep the caller's globs that some server glob admits entirely (a conservative intersection)."""
    return tuple(p for p in caller if any(fnmatch.fnmatchcase(p, s) for s in server)) or ("",)
