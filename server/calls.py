"""What the run-starting tools share: their ``options``, the run they start, and the wait for its outcome."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, Elicit
from pydantic import BaseModel, ConfigDict, Field, field_validator

from patterns import SETTLED, RunOptions
from server import logs
from server.auth import current_principal
from server.errors import tool_errors
from server.lifespan import AppState
from server.results import DEFAULT_STEP_LIMIT, MAX_STEP_LIMIT, RunResult, StepView, pick_steps, run_result
from storage import GATE_PENDING, GateRecord, RunRecord
from storage.records import DELEGATION_KEY_PREFIX

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


# at most max_steps tool steps and max_cost summed tool cost: the names say it (no docstring, no descriptions:
# the schema goes to every client in six tools' input schemas)
class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_steps: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, ge=0)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    wait_s: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Max wait (s, <= 50).",
    )
    # The names say what the rest are (step_limit: steps listed in the result; parent_run_id: the run this one
    # works for; deadline_s: the run's time-out; tags: labels): this schema goes out in seven tools' input schemas.
    step_limit: int = Field(DEFAULT_STEP_LIMIT, ge=0, le=MAX_STEP_LIMIT)
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Same key, same run.",
    )
    parent_run_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    deadline_s: float | None = Field(None, gt=0)

    @field_validator("idempotency_key")
    @classmethod
    def _not_reserved(cls, key: str | None) -> str | None:
        if key is not None and key.startswith(DELEGATION_KEY_PREFIX):
            raise ValueError(
                f"keys starting with {DELEGATION_KEY_PREFIX!r} are reserved for the child runs of delegation steps"
            )
        return key

    budget: Budget | None = None
    tags: Tags = Field(default_factory=dict, max_length=MAX_TAGS)


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


def can_elicit(ctx: Context[Any]) -> bool:
    """Whether the client can ask its user a question (a gate naming ``requester`` needs that)."""
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.elicitation is not None


async def settle(
    app: AppState, ctx: Context[Any], run_id: str, wait_s: float, step_limit: int = DEFAULT_STEP_LIMIT
) -> RunResult:
    """Wait up to ``wait_s`` (at most 50 s) for the run to settle, then describe it (``step_limit`` steps).

    Progress is reported about once a second, and the run's events as log messages if the caller asked for them
    (``server.logs``). A call that finds the run waiting on a gate waits for the decision (and then for the run); a
    gate that opens during the call ends the wait at once.
    """
    told = logs.forwarder(ctx)
    if told is None:
        record = await _wait(app, ctx, run_id, wait_s, None)
    else:
        with app.engine.events.listen(run_id, told):
            record = await _wait(app, ctx, run_id, wait_s, told)
        await told.flush()
    steps = await step_view(app, record, step_limit)
    gate = None
    if record.status == "waiting":
        pending = await app.store.gates.find(GATE_PENDING, run_id, limit=1)
        gate = pending[0] if pending else None
    return run_result(
        app.engine.live(record),
        steps,
        gate,
        approval_url=f"{app.http_url}/gates/" if app.http_url else None,
        step_limit=step_limit,
        max_output_bytes=app.settings.max_result_bytes,
        can_elicit=can_elicit(ctx),
    )


async def step_view(app: AppState, record: RunRecord, step_limit: int) -> StepView:
    """What a result with ``step_limit`` steps needs of the run's steps, read at a cost that grows with the limit."""
    statuses, shown, children = await app.engine.step_overview(
        record, lambda pairs: pick_steps(pairs, step_limit), children=step_limit
    )
    return StepView(statuses, shown, children)


async def _wait(app: AppState, ctx: Context[Any], run_id: str, wait_s: float, told: logs.Forwarder | None) -> RunRecord:
    """The run once it settled, parked at a new gate, or the wait ran out."""
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
        if app.engine.is_active(run_id):  # executing here: woken by its completion, or to report progress
            record = await app.engine.wait(run_id, timeout_s=min(PROGRESS_EVERY_S, left))
            if told is not None:
                await told.flush()
            if record.status not in SETTLED:
                done, total = app.engine.progress(run_id)
                await ctx.report_progress(done, total, f"{done} step{'s' if done != 1 else ''} done")
            continue
        fresh = await app.engine.get(run_id)  # it may have settled here a moment ago
        if fresh.status != record.status or fresh.updated_at != record.updated_at:
            record = fresh
            continue
        await anyio.sleep(min(POLL_S, left))  # a decision or another process moves it on: look again
        record = await app.engine.get(run_id)
    return record


async def start(
    app: AppState, ctx: Context[Any], tree: dict[str, Any], input: Any, options: Options | None
) -> RunResult:
    """Start a run of ``tree`` for the caller and wait for it as its ``options`` say."""
    options = options or Options()
    with tool_errors():
        record = await app.engine.start(tree, input, run_options(options, current_principal()))
        return await settle(app, ctx, record.id, wait_seconds(app, options), options.step_limit)


async def start_workflow(
    app: AppState, ctx: Context[Any], workflow: str, input: Any, options: Options | None
) -> RunResult:
    """Start a run of the published ``workflow`` for the caller and wait for it as its ``options`` say."""
    options = options or Options()
    with tool_errors():
        record = await app.engine.start_workflow(workflow, input, run_options(options, current_principal()))
        return await settle(app, ctx, record.id, wait_seconds(app, options), options.step_limit)


def wait_seconds(app: AppState, options: Options | None) -> float:
    """How long a run-starting call waits: its ``options.wait_s``, else the server's ``default_wait_s``."""
    asked = None if options is None else options.wait_s
    return app.settings.default_wait_s if asked is None else asked


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
    if REQUESTER not in (approvers or []) or not can_elicit(ctx):
        return None
    shown = json.dumps(payload, indent=2, ensure_ascii=False)
    return Elicit(f"Approval requested: {title}\n\n{brief}\n\nPayload:\n{shown}", ApprovalAnswer)
