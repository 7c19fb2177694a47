"""Pattern errors. Each carries ``type``, one of the error types of the public contract, and the step path.

Tree::

    PatternError                 type is one of ERROR_TYPES
    ├── InvalidStep              invalid_input: a malformed step tree, template or argument
    │   └── OperatorError        a retry or skip of a stopped run that cannot be carried out
    ├── UnknownTool              unknown_tool: a reference that does not resolve
    ├── LimitExceeded            limit_exceeded: names the limit and its value
    ├── ContractViolation        contract_violation: names the step, the field and the schema rule
    ├── StepFailed               tool_failed / timeout / internal at run time
    ├── NeedsAttention           tool_failed: a non-idempotent step was interrupted; an operator decides
    ├── RunCancelled             cancelled
    ├── GateRejected             gate_rejected: a person said no
    ├── GateTimedOut             timeout: no decision within the SLA, and on_timeout is 'fail'
    ├── GateError                invalid_input: a decision that cannot be taken, with a machine-readable reason
    └── ShuttingDown             internal: the engine is draining and starts no new runs

    GateWaiting                  not an error: the run parks at a gate until it is decided
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from storage import GateRecord

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
    "circuit_open",
]
ERROR_TYPES: tuple[ErrorType, ...] = get_args(ErrorType)


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


class OperatorError(InvalidStep):
    """A retry or skip that cannot be carried out; the message says why and what would work. Nothing changed."""


class NeedsAttention(PatternError):
    """A non-idempotent step was interrupted mid-call; only an operator may decide to call it again."""

    type: ErrorType = "tool_failed"
    absorbable = False


class GateRejected(PatternError):
    type: ErrorType = "gate_rejected"
    absorbable = False


class GateTimedOut(PatternError):
    type: ErrorType = "timeout"
    absorbable = False


GateErrorReason = Literal[
    "invalid_decision",  # not approve / reject / modify, or a payload where none belongs (or none where one does)
    "invalid_argument",  # a name, comment or payload of the wrong type or beyond its limit
    "reserved_name",  # a name only Podium itself decides under (system:...)
    "already_decided",
    "expired",  # its run was cancelled
    "timed_out",  # no decision within the SLA and on_timeout 'fail'
    "opener",  # the principal that opened the gate
    "not_an_approver",
]


class GateError(PatternError):
    """A decision that cannot be taken: the message says why, ``reason`` says it for code; nothing was changed."""

    type: ErrorType = "invalid_input"

    def __init__(self, message: str, reason: GateErrorReason) -> None:
        super().__init__(message)
        self.reason: GateErrorReason = reason


class ShuttingDown(PatternError):
    """The engine is draining for shutdown and starts no new runs."""

    type: ErrorType = "internal"


class GateWaiting(Exception):
    """Control flow, not a failure: the run parks until the gate is decided."""

    def __init__(self, gate: GateRecord) -> None:
        super().__init__(f"waiting on gate {gate.id}")
        self.gate = gate
