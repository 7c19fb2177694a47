"""The step language and the engine that runs step trees durably."""

from patterns.engine import RUN_STATUSES, SETTLED, Engine, Plan, RunOptions, new_run_id
from patterns.errors import (
    ERROR_TYPES,
    ContractViolation,
    ErrorType,
    InvalidStep,
    LimitExceeded,
    NeedsAttention,
    PatternError,
    RunCancelled,
    StepFailed,
    UnknownTool,
)
from patterns.limits import Limits
from patterns.steps import (
    KINDS,
    AnyStep,
    ChainStep,
    FanOutStep,
    MapReduceStep,
    RefineStep,
    RouteStep,
    Step,
    ToolStep,
    parse_step,
)

__all__ = [
    "ERROR_TYPES",
    "KINDS",
    "RUN_STATUSES",
    "SETTLED",
    "AnyStep",
    "ChainStep",
    "ContractViolation",
    "Engine",
    "ErrorType",
    "FanOutStep",
    "InvalidStep",
    "LimitExceeded",
    "Limits",
    "MapReduceStep",
    "NeedsAttention",
    "PatternError",
    "Plan",
    "RefineStep",
    "RouteStep",
    "RunCancelled",
    "RunOptions",
    "Step",
    "StepFailed",
    "ToolStep",
    "UnknownTool",
    "new_run_id",
    "parse_step",
]
