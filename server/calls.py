"""What the run-starting tools share: their ``options``, the run they start, and the wait for its outcome."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, Elicit
from pydantic import BaseModel, ConfigDict, Field

from patterns import SETTLED, RunOptions
from server.auth import current_principal
from server.errors import tool_errors
from server.lifespan import AppState
from server.results import RunResult, run_result
from storage import GATE_PENDING, GateRecord

MAX_WAIT_S = 50.0
POLL_S = 0.25
PROGRESS_EVERY_S = 1.0
REQUESTER = "requester"
MAX_ID_CHARS = 64
MAX_TAGS = 32
MAX_TAG_KEY_CHARS = 64
MAX_TAG_VALUE_CHARS = 256
Tags = dict[
    Annotated[str, Field(min_length=1, max_length=MAX_TAG_KEY_CHARS)],
    Annotated[str, Field(max_length=MAX_TAG_VALUE_CHARS)],
]


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_steps: int | None = Field(None, ge=1, description="At most this many tool steps.")
    max_cost: float | None = Field(None, ge=0, description="At most this much summed tool cost.")


class Options(BaseModel):
    """How a run-starting call behaves. All optional."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    wait_s: float = Field(20.0, ge=0, description="Seconds to wait for the run before returning it running (max 50).")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Repeat-safe key: a call with a key already used returns that run instead of starting another.",
    )
    parent_run_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID_CHARS, description="The run this one works for (delegation)."
    )
    deadline_s: float | None = Field(None, gt=0, description="The run fails timed_out after this many seconds.")
    budget: Budget | None = None
    tags: Tags = Field(
        default_factory=dict,
        max_length=MAX_TAGS,
        description=f"Labels: at most {MAX_TAGS}, keys up to {MAX_TAG_KEY_CHARS} and values up to "
        f"{MAX_TAG_VALUE_CHARS} characters.",
    )


def run_options(options: Options | None, principal: str = "local") -> RunOptions:
    """The engine's options for a call's ``options``, on behalf of ``principal``."""
    options = options or Options()
    budget = options.budget or Budget()
    return RunOptions(
        idempotency_key=options.idempotency_key,
        parent_run_id=options.parent_run_id,
        deadline_s=options.deadline_s,
        max_steps=budget.max_steps,
        max_cost=budget.max_cost,
        tags=dict(options.tags),
        principal=principal,
    )


async def settle(app: AppState, ctx: Context[Any], run_id: str, wait_s: float, include_steps: bool = True) -> RunResult:
    """Wait up to ``wait_s`` (at most 50 s) for the run to settle, then describe it.

    Progress is reported about once a second. A call that finds the run waiting on a gate waits for the decision
    (and then for the run); a gate that opens during the call ends the wait at once.
    """
    end = anyio.current_time() + max(0.0, min(wait_s, MAX_WAIT_S))
    record = await app.engine.get(run_id)
    # Called on a run parked at a gate, wait for that gate's decision; a later park (at the next gate) ends the
    # wait. A park is told apart from the one this call began on by the run's update time.
    parked_at = record.updated_at if record.status == "waiting" else None
    while record.status not in SETTLED:
        if record.status == "waiting" and record.updated_at != parked_at:
            break
        if app.engine.draining:  # shutting down: answer now; the caller waits on another replica or after restart
            break
        left = end - anyio.current_time()
        if left <= 0:
            break
        if record.status == "waiting" or not app.engine.is_active(run_id):
            await anyio.sleep(min(POLL_S, left))  # a decision or another process moves it on: look again
            record = await app.engine.get(run_id)
            continue
        record = await app.engine.wait(run_id, timeout_s=min(PROGRESS_EVERY_S, left))
        if record.status not in SETTLED:
            done, total = app.engine.progress(run_id)
            await ctx.report_progress(done, total, f"{done} step{'s' if done != 1 else ''} done")
    steps = await app.engine.steps(run_id, payloads=False) if include_steps else []
    gate = None
    if record.status == "waiting":
        pending = await app.store.gates.find(GATE_PENDING, run_id, limit=1)
        gate = pending[0] if pending else None
    return run_result(record, steps, gate, approval_url=f"{app.http_url}/gates/" if app.http_url else None)


async def start(
    app: AppState, ctx: Context[Any], tree: dict[str, Any], input: Any, options: Options | None
) -> RunResult:
    """Start a run of ``tree`` for the caller and wait for it as its ``options`` say."""
    with tool_errors():
        record = await app.engine.start(tree, input, run_options(options, current_principal()))
        return await settle(app, ctx, record.id, (options or Options()).wait_s)


async def opened_gate(app: AppState, run_id: str) -> GateRecord | None:
    """The gate a one-gate run opens (it opens as soon as the run starts)."""
    with anyio.fail_after(10):
        while True:
            found = await app.store.gates.find(None, run_id, limit=1)
            if found:
                return found[0]
            if (await app.engine.get(run_id)).status in SETTLED:
                return None
            await anyio.sleep(0.01)


class ApprovalAnswer(BaseModel):
    """What the human behind the client answers when a gate names ``requester`` among its approvers."""

    decision: Literal["approve", "reject"] = Field(description="Approve or reject the request.")
    comment: str = Field("", description="Why (recorded with the decision).")


def ask_requester(
    ctx: Context[Any], title: str, brief: str, payload: Any = None, approvers: list[str] | None = None
) -> Elicit[ApprovalAnswer] | None:
    """Ask the human behind the client — never the model — when the gate allows it and the client can ask."""
    capabilities = ctx.client_capabilities
    if REQUESTER not in (approvers or []) or capabilities is None or capabilities.elicitation is None:
        return None
    shown = json.dumps(payload, indent=2, ensure_ascii=False)
    return Elicit(f"Approval requested: {title}\n\n{brief}\n\nPayload:\n{shown}", ApprovalAnswer)
