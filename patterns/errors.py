"""Pattern errors. Each carries ``type``, one of the error types of the public contract, and the step path.

Tree::

    PatternError                 type is one of ERROR_TYPES
    ├── InvalidStep              invalid_input: a malformed step tree, template or argument
    ├── UnknownTool              unknown_tool: a reference that does not resolve
    ├── LimitExceeded            limit_exceeded: names the limit and its value
    ├── ContractViolation        contract_violation: names the step, the field and the schema rule
    ├── StepFailed               tool_failed / timeout / internal at run time
    └── RunCancelled             cancelled
"""

from __future__ import annotations

from typing import Any, Literal

ErrorType = Literal[
    "invalid_input",
    "unknown_tool",
    "contract_violation",
    "limit_exceeded",
    "tool_failed",
    "timeout",
    "gate_rejected",
    "cancelled",
    "internal",
]
ERROR_TYPES: tuple[ErrorType, ...] = (
    "invalid_input",
    "unknown_tool",
    "contract_violation",
    "limit_exceeded",
    "tool_failed",
    "timeout",
    "gate_rejected",
    "cancelled",
    "internal",
)


def describe_path(path: str) -> str:
    return path if path else "(root)"


MAX_QUOTED_CHARS = 200


def clip(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out: caller-given values quoted in a
    message (a tool name, a case key, an expression, a value) never make the message long."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class PatternError(Exception):
    """Root of the engine's errors: ``message`` for a person or model, ``type`` and ``step`` for code."""

    type: ErrorType = "internal"

    def __init__(self, message: str, *, step: str | None = None, type: ErrorType | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        if type is not None:
            self.type = type

    absorbable = True
    """Whether ``critical: false`` or a best-effort strategy may turn this failure into a gap."""

    @property
    def retryable(self) -> bool:
        """Whether a retry policy may try again. Deterministic failures are never retried."""
        return self.type in ("tool_failed", "timeout")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "step": self.step}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatternError:
        return cls(str(data.get("message", "")), step=data.get("step"), type=data.get("type", "internal"))

    def __str__(self) -> str:
        return self.message


class InvalidStep(PatternError):
    type: ErrorType = "invalid_input"


class UnknownTool(PatternError):
    type: ErrorType = "unknown_tool"


class LimitExceeded(PatternError):
    type: ErrorType = "limit_exceeded"
    absorbable = False

    def __init__(self, limit: str, value: Any, detail: str, *, step: str | None = None) -> None:
        super().__init__(f"limit {limit}={value} exceeded: {detail}", step=step)
        self.limit = limit
        self.value = value


class ContractViolation(PatternError):
    type: ErrorType = "contract_violation"


class StepFailed(PatternError):
    type: ErrorType = "tool_failed"


class RunCancelled(PatternError):
    type: ErrorType = "cancelled"
    absorbable = False
