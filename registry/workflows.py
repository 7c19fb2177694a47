"""Workflow specifications: named, versioned step trees that runs start by reference (``run_workflow``).

A workflow is published like a tool: an immutable ``name@version`` whose definition never changes (re-publishing a
version with another definition is an error naming the fields that differ), resolved by the same references
(``name``, ``name@^1.2``, ...). Its ``step`` is kept here as JSON data; the step language (``patterns``) checks it
before it is published and plans it when a run starts.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any

from pydantic import Field, field_validator

from registry.models import NAME_PATTERN, Published

MAX_ALLOWED_TOOLS = 100
MAX_GLOB_CHARS = 200
# What a workflow may lower for its runs; each must be a positive number (the server's limits still cap it).
LIMIT_NAMES = frozenset(
    {"max_steps", "max_concurrency", "max_cost_per_run", "max_run_s", "max_payload_bytes", "max_run_bytes"}
)


class WorkflowSpec(Published):
    """One published version of a workflow."""

    name: str = Field(pattern=NAME_PATTERN)
    version: str
    description: str = ""
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    step: dict[str, Any]
    limits: dict[str, Annotated[int | float, Field(gt=0, allow_inf_nan=False)]] | None = Field(
        None, description="Limits lowered for the workflow's runs (never raised above the server's)."
    )
    allowed_tools: tuple[Annotated[str, Field(min_length=1, max_length=MAX_GLOB_CHARS)], ...] | None = Field(
        None,
        max_length=MAX_ALLOWED_TOOLS,
        description="Globs over tool names (or name@version); the workflow may use no other tool.",
    )
    deprecated: bool = False

    @field_validator("limits")
    @classmethod
    def _limit_names(cls, value: dict[str, int | float] | None) -> dict[str, int | float] | None:
        unknown = sorted(set(value or {}) - LIMIT_NAMES)
        if unknown:
            raise ValueError(
                f"unknown limit {', '.join(unknown)}; a workflow may lower {', '.join(sorted(LIMIT_NAMES))}"
            )
        return value

    def allows(self, name: str, version: str) -> bool:
        """Whether ``allowed_tools`` lets the workflow use ``name@version`` (any tool when it is not set)."""
        if self.allowed_tools is None:
            return True
        ref = f"{name}@{version}"
        return any(fnmatch.fnmatchcase(name, glob) or fnmatch.fnmatchcase(ref, glob) for glob in self.allowed_tools)
