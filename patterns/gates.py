"""Approval gates: a run waits for a human decision without holding a task, for as long as it takes.

Opening a gate records it durably and parks the run as ``waiting``. A decision (CLI, MCP ``decide_gate``,
elicitation, HTTP) is a compare-and-set on the gate's row, so exactly one wins; the run is then resumed by
whichever process claims it, replaying everything before the gate. ``tick`` — run by every engine's
scheduler — records the reminder at 80% of each SLA, escalates to the next name in ``escalate_to`` when an
SLA passes, and applies ``on_timeout`` after the last one; each of those transitions is also a compare-and-set.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from patterns import contracts
from patterns.base import NodeRunner
from patterns.errors import (
    ContractViolation,
    GateError,
    GateErrorReason,
    GateRejected,
    GateTimedOut,
    GateWaiting,
    PatternError,
    RunCancelled,
    clip,
    describe_path,
)
from patterns.events import Level, Listener, RunEvent, ignore
from patterns.limits import Limits
from patterns.state import Scope
from patterns.steps import MAX_NAME_CHARS, GateStep
from storage import GATE_DECIDED, GATE_EXPIRED, GATE_PENDING, GATE_TIMED_OUT, GateRecord, NewGate, dumps

if TYPE_CHECKING:
    from storage import Store

log = logging.getLogger("podium.gates")
DECISIONS = ("approve", "reject", "modify")
REMINDER_AT = 0.8
RESERVED_PREFIX = "system:"
SYSTEM_SLA = f"{RESERVED_PREFIX}sla"


MAX_COMMENT_CHARS = 4096


def payload_hash(payload: Any) -> str:
    """Fingerprint of the payload an approver saw, recorded with the decision."""
    return hashlib.sha256(dumps(payload).encode()).hexdigest()


def gate_output(gate: GateRecord) -> dict[str, Any]:
    payload = gate.decided_payload if gate.decision == "modify" else gate.payload
    return {
        "gate_id": gate.id,
        "decision": gate.decision,
        "payload": payload,
        "decided_by": gate.decided_by,
        "comment": gate.comment,
    }


def outcome(gate: GateRecord, path: str) -> dict[str, Any]:
    """What a gate step gives once its gate is settled, or the exception that parks or ends the run."""
    where = f"gate {gate.title!r} ({gate.id}) at step {describe_path(path)}"
    if gate.status == GATE_PENDING:
        raise GateWaiting(gate)
    if gate.status == GATE_EXPIRED:
        raise RunCancelled(f"cancelled: {where} expired", step=path)
    if gate.status == GATE_TIMED_OUT:
        raise GateTimedOut(f"{where} got no decision within its SLA and on_timeout is 'fail'", step=path)
    if gate.decision == "reject":
        why = f": {gate.comment}" if gate.comment else ""
        raise GateRejected(f"{where} was rejected by {gate.decided_by}{why}", step=path)
    return gate_output(gate)


async def run_gate(runner: NodeRunner, step: GateStep, path: str, value: Any, scope: Scope) -> dict[str, Any]:
    state = runner.state
    gates = state.store.gates
    gate = await gates.at(state.run_id, path)
    if gate is None:
        spec = step.gate
        payload = value
        if "payload" in spec.model_fields_set:
            payload = runner.evaluate(spec, spec.payload, path, scope, "gate payload")
        contracts.to_json(payload, path, "gate payload", state.limits)
        _check_payload(spec.payload_schema, payload, path, "the gate's payload")
        await state.store.flush(state.run_id)  # durability barrier: everything before the gate is on disk
        gate, _ = await gates.create(
            NewGate(
                id=str(uuid.uuid4()),
                run_id=state.run_id,
                path=path,
                title=spec.title,
                brief=spec.brief,
                payload=payload,
                payload_schema=spec.payload_schema,
                approvers=list(spec.approvers),
                escalate_to=list(spec.escalate_to),
                sla_s=spec.sla_s,
                on_timeout=spec.on_timeout,
                opened_by=state.principal,
            )
        )
        state.tell(
            "gate_opened",
            "notice",
            f"gate {gate.id} ({gate.title!r}) awaits {' or '.join(gate.current_approvers)} until {_when(gate.sla_at)}",
            path,
        )
    if gate.status != GATE_PENDING and gate.consumed_at is None:
        await gates.consume(gate.id)
        if gate.status == GATE_DECIDED:
            level: Level = "info" if gate.decision in ("approve", "modify") else "warning"
            decided = f"gate {gate.id} ({gate.title!r}): {gate.decision} by {gate.decided_by}"
            state.tell("gate_decided", level, decided, path)
    return outcome(gate, path)


def _check_payload(schema: dict[str, Any] | None, payload: Any, path: str, what: str) -> None:
    if not schema:
        return
    problem = contracts.schema_problem(Draft202012Validator(schema), payload)
    if problem is not None:
        raise ContractViolation(
            f"step {describe_path(path)}: {what} breaks the gate's payload_schema {problem}", step=path
        )


def _settled_message(gate: GateRecord) -> str:
    if gate.status == GATE_DECIDED:
        return f"gate {gate.id} was already decided ({gate.decision}) by {gate.decided_by} at {_when(gate.decided_at)}"
    if gate.status == GATE_EXPIRED:
        return f"gate {gate.id} expired at {_when(gate.updated_at)} (its run was cancelled)"
    return f"gate {gate.id} timed out at {_when(gate.decided_at)} with no decision"


def _when(at: float | None) -> str:
    if at is None:
        return "an unknown time"
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def decide(
    store: Store, gate_id: str, decision: str, by: str, comment: str | None = None, payload: Any = None
) -> GateRecord:
    """Decide a gate as ``by``. Raises ``GateError`` (or ``ContractViolation`` for a bad ``modify``) with nothing
    changed: unknown decision, a gate that is no longer pending, the principal that opened it, someone who is not
    an approver, a modify without a payload or one that breaks the payload schema."""
    _check_arguments(decision, by, comment, payload)
    gate = await store.gates.get(gate_id)
    if decision == "approve" and payload is not None:
        decision = "modify"  # approving an edited payload is a modification
    if decision == "modify" and payload is None:
        raise GateError("a 'modify' decision needs the edited payload", "invalid_decision")
    if decision == "reject" and payload is not None:
        raise GateError("a 'reject' decision takes no payload", "invalid_decision")
    if gate.status != GATE_PENDING:
        raise _settled(gate)
    if by == gate.opened_by:
        raise GateError(f"{by!r} opened gate {gate.id} and cannot decide it; a human approver must", "opener")
    allowed = gate.allowed_deciders
    if allowed and by not in allowed:
        raise GateError(
            f"{by!r} is not an approver of gate {gate.id}; approvers: {', '.join(allowed)}", "not_an_approver"
        )
    if decision == "modify":
        _check_payload(gate.payload_schema, payload, gate.path, "the modified payload")
    decided = await store.gates.decide(
        gate, decision, by, comment, payload if decision == "modify" else None, payload_hash(gate.payload)
    )
    if decided is None:  # another decision got there first
        raise _settled(await store.gates.get(gate_id))
    return decided


def _check_arguments(decision: Any, by: Any, comment: Any, payload: Any) -> None:
    """Types and limits of what a decider sends: refused before anything is read or written."""
    if not isinstance(decision, str) or decision not in DECISIONS:
        shown = repr(clip(decision, 40)) if isinstance(decision, str) else f"a {type(decision).__name__}"
        raise GateError(f"decision must be one of {', '.join(DECISIONS)}, not {shown}", "invalid_decision")
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_NAME_CHARS:
        raise GateError(
            f"the decider's name must be a non-empty string of at most {MAX_NAME_CHARS} characters", "invalid_argument"
        )
    if by.startswith(RESERVED_PREFIX):
        raise GateError(
            f"{clip(by, 40)!r} is reserved: names starting {RESERVED_PREFIX!r} record what Podium decided itself",
            "reserved_name",
        )
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise GateError(f"comment must be a string of at most {MAX_COMMENT_CHARS} characters", "invalid_argument")
    if payload is not None:
        try:
            contracts.check_caller_payload(payload, "the payload", Limits())
        except PatternError as exc:
            raise GateError(exc.message, "invalid_argument") from None


def _settled(gate: GateRecord) -> GateError:
    reason: GateErrorReason = (
        "already_decided" if gate.status == GATE_DECIDED else "expired" if gate.status == GATE_EXPIRED else "timed_out"
    )
    return GateError(_settled_message(gate), reason)


async def tick(store: Store, now: float, publish: Listener = ignore) -> None:
    """One pass of the gate scheduler: reminders, escalations and time-outs that are due (escalations are
    published as events of the gate's run)."""
    for gate in await store.gates.due(now, REMINDER_AT):
        if gate.reminded_level < gate.level:
            # every level gets its reminder, even when a late pass finds its SLA already over
            reminded = await store.gates.remind(gate)
            if reminded is None:
                continue  # another scheduler moved this gate on
            log.warning("reminder: gate %s (%r) awaits %s", gate.id, gate.title, ", ".join(gate.current_approvers))
            gate = reminded
        if gate.sla_at > now:
            continue
        if gate.level < len(gate.escalate_to):
            if await store.gates.escalate(gate):
                to = gate.escalate_to[gate.level]
                log.warning("gate %s (%r) escalated to %s", gate.id, gate.title, to)
                message = f"gate {gate.id} ({gate.title!r}) had no decision within its SLA: escalated to {to}"
                publish(RunEvent(gate.run_id, "gate_escalated", "warning", message, gate.path))
        elif gate.on_timeout == "fail":
            await store.gates.time_out(gate)
        else:
            await store.gates.decide(
                gate,
                gate.on_timeout,
                SYSTEM_SLA,
                f"no decision within the SLA; on_timeout is {gate.on_timeout!r}",
                None,
                payload_hash(gate.payload),
            )
