"""The MCP server: thin, typed adapters from MCP tools to the engine, the registry and the store."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import anyio
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, MCPServer, Resolve
from mcp.types import ToolAnnotations
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, WithJsonSchema

from patterns import RUN_STATUSES, SETTLED, Engine, PatternError, RunOptions, gates
from patterns.contracts import check_caller_payload
from patterns.expressions import MAX_EXPRESSION_CHARS
from patterns.gates import MAX_COMMENT_CHARS
from patterns.steps import MAX_BRIEF_CHARS, MAX_NAME_CHARS, MAX_NAMES, MAX_REF_CHARS, MAX_SLA_S
from registry import Registry, ToolSpec
from server.approvals import add_approval_routes
from server.auth import PrincipalTokens, current_principal, roles_of
from server.config import Settings
from server.errors import PodiumServer, PodiumToolError, resource_errors, tool_errors
from server.results import (
    RunList,
    RunResult,
    ToolInfo,
    ToolList,
    Validation,
    catalogue,
    run_result,
    run_summary,
    tool_info,
)
from server.stdio import refuse_oversized
from server.texts import INSTRUCTIONS, SUPERVISE_PROMPT, TOOL_DOCS
from storage import GATE_PENDING, GateRecord, Store

log = logging.getLogger("podium.server")
MAX_WAIT_S = 50.0
POLL_S = 0.25
REQUESTER = "requester"
PROGRESS_EVERY_S = 1.0
StepJSON = dict[str, Any]
# Lists and maps of steps are taken as they arrive, with the schema clients see: the step language checks them
# (bounds first, without copying), where validating them here would copy every step of a large request first.
StepList = Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "object"}, "minItems": 1})]
StepMap = Annotated[Any, WithJsonSchema({"type": "object", "additionalProperties": {"type": "object"}})]
Strategy = Literal["all", "best_effort", "quorum"]
STEPS_FIELD = Field(description="Steps in order; each gets the previous step's output unless it has `input`.")
# limits on arguments (the step language's own are in patterns.steps and patterns.expressions)
MAX_ID_CHARS = 64
MAX_TAGS = 32
MAX_TAG_KEY_CHARS = 64
MAX_TAG_VALUE_CHARS = 256
MAX_REASON_CHARS = 1024
MAX_QUERY_CHARS = 200
MAX_TITLE_CHARS = 200
RunStatus = Literal[
    "pending", "running", "waiting", "succeeded", "partial", "failed", "rejected", "cancelled", "timed_out",
    "needs_attention",
]  # fmt: skip
assert set(get_args(RunStatus)) == set(RUN_STATUSES)
Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]], Field(max_length=MAX_NAMES)]


RunId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, description="A run's id, from a RunResult.")]
GateId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, description="A gate's id, from RunResult.gate.")]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Expression = Annotated[str, Field(min_length=1, max_length=MAX_EXPRESSION_CHARS)]
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


class ApprovalAnswer(BaseModel):
    """What the human behind the client answers when a gate names ``requester`` among its approvers."""

    decision: Literal["approve", "reject"] = Field(description="Approve or reject the request.")
    comment: str = Field("", description="Why (recorded with the decision).")


def _can_elicit(ctx: Context[Any]) -> bool:
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.elicitation is not None


def ask_requester(
    ctx: Context[Any], title: str, brief: str, payload: Any = None, approvers: list[str] | None = None
) -> Elicit[ApprovalAnswer] | None:
    """Ask the human behind the client — never the model — when the gate allows it and the client can ask."""
    if REQUESTER not in (approvers or []) or not _can_elicit(ctx):
        return None
    shown = json.dumps(payload, indent=2, ensure_ascii=False)
    return Elicit(f"Approval requested: {title}\n\n{brief}\n\nPayload:\n{shown}", ApprovalAnswer)


@dataclass
class AppState:
    settings: Settings
    store: Store
    registry: Registry
    engine: Engine
    http_url: str | None = None


def _app(ctx: Context[Any]) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


def _run_options(options: Options | None, principal: str = "local") -> RunOptions:
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


async def _settle(
    app: AppState, ctx: Context[Any], run_id: str, wait_s: float, include_steps: bool = True
) -> RunResult:
    """Wait up to ``wait_s`` for the run to settle, then describe it.

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


async def _start(app: AppState, ctx: Context[Any], tree: StepJSON, input: Any, options: Options | None) -> RunResult:
    with tool_errors():
        record = await app.engine.start(tree, input, _run_options(options, current_principal()))
        return await _settle(app, ctx, record.id, (options or Options()).wait_s)


async def check_plan(engine: Engine, step: Any) -> Validation:
    """What ``validate`` reports: the tree's problems, or the versions its references resolve to."""
    try:
        plan = await engine.plan(step)
    except PatternError as exc:
        return Validation(valid=False, problems=[f"{exc.type}: {exc.message}"])
    problems = [f"contract_violation: {gap}" for gap in plan.schema_gaps()]
    return Validation(valid=not problems, lock=plan.lock, problems=problems)


async def _opened_gate(app: AppState, run_id: str) -> GateRecord | None:
    """The gate a one-gate run opens (it opens as soon as the run starts)."""
    with anyio.fail_after(10):
        while True:
            found = await app.store.gates.find(None, run_id, limit=1)
            if found:
                return found[0]
            if (await app.engine.get(run_id)).status in SETTLED:
                return None
            await anyio.sleep(0.01)


def _clean(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop arguments left at None so the step tree holds only what the caller said."""
    return {k: v for k, v in spec.items() if v is not None}


async def _tool_info(app: AppState, spec: ToolSpec) -> ToolInfo:
    versions = [s.version for s in await app.registry.versions(spec.name)]
    return tool_info(spec, versions)


def _lifespan(settings: Settings, running: list[AppState], http_url: str | None) -> Any:
    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[AppState]:
        state: AppState | None = None
        try:
            async with Store.open(settings.database_url, durability=settings.durability) as store:
                registry = Registry(store, sync_threads=settings.sync_tool_threads)
                for path in settings.registry:
                    await registry.register_file(path)
                async with Engine(
                    store, registry, settings.limits, lease_s=settings.lease_s, grace_s=settings.shutdown_grace_s
                ) as engine:
                    log.info("podium serving with %s", store.db.display)
                    state = AppState(settings, store, registry, engine, http_url)
                    running.append(state)
                    try:
                        yield state
                    finally:
                        # A tool's unflushed print() would otherwise be flushed at exit, after the stdio transport
                        # has pointed fd 1 back at the wire; flushed now, it goes where fd 1 is diverted (stderr).
                        sys.stdout.flush()
        finally:
            if state is not None:  # gone once the engine has stopped and the store is closed
                running.remove(state)

    return lifespan


RUN = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def build_server(
    settings: Settings, *, http_url: str | None = None, running: list[AppState] | None = None
) -> MCPServer:
    """The Podium MCP server over the database and registry files that ``settings`` name.

    Args:
        settings: database, limits, registry files and principals.
        http_url: the server's own base URL when it will serve HTTP; with principals configured, requests then
            need a bearer token of one of them.
        running: a list in which the server keeps its state (store, registry, engine) from start-up until its
            engine has stopped and its store is closed, for whoever drives the process (e.g. to drain the engine
            on SIGTERM).
    """
    auth: dict[str, Any] = {}
    if http_url is not None and settings.principal:
        auth = {
            "token_verifier": PrincipalTokens(settings.principal),
            "auth": AuthSettings(
                issuer_url=AnyHttpUrl(http_url),
                resource_server_url=AnyHttpUrl(f"{http_url}/mcp"),
                validate_token_resource=False,
            ),
        }
    running = running if running is not None else []
    mcp = PodiumServer(
        "podium", version="0.1.0", instructions=INSTRUCTIONS, lifespan=_lifespan(settings, running, http_url), **auth
    )
    mcp.middleware.append(refuse_oversized)
    if http_url is not None:
        add_approval_routes(mcp, lambda: running[0] if running else None, urlsplit(http_url).hostname or "")

    @mcp.tool(description=TOOL_DOCS["run_chain"], annotations=RUN)
    async def run_chain(
        ctx: Context[Any],
        steps: Annotated[StepList, STEPS_FIELD],
        input: Any = None,
        options: Options | None = None,
    ) -> RunResult:
        return await _start(_app(ctx), ctx, {"chain": steps}, input, options)

    @mcp.tool(description=TOOL_DOCS["fan_out"], annotations=RUN)
    async def fan_out(
        ctx: Context[Any],
        branches: StepList,
        input: Any = None,
        strategy: Strategy = "all",
        quorum: int | None = None,
        branch_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None,
        max_concurrency: int | None = None,
        reduce: StepJSON | None = None,
        options: Options | None = None,
    ) -> RunResult:
        spec = _clean(
            {
                "branches": branches,
                "strategy": strategy,
                "quorum": quorum,
                "branch_timeout_s": branch_timeout_s,
                "max_concurrency": max_concurrency,
                "reduce": reduce,
            }
        )
        return await _start(_app(ctx), ctx, {"fan_out": spec}, input, options)

    @mcp.tool(description=TOOL_DOCS["map_reduce"], annotations=RUN)
    async def map_reduce(
        ctx: Context[Any],
        items: list[Any],
        map: StepJSON,
        reduce: StepJSON | None = None,
        chunk_size: int = 1,
        max_concurrency: int | None = None,
        item_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None,
        strategy: Strategy = "all",
        quorum: int | None = None,
        options: Options | None = None,
    ) -> RunResult:
        spec = _clean(
            {
                "map": map,
                "reduce": reduce,
                "chunk_size": chunk_size,
                "max_concurrency": max_concurrency,
                "item_timeout_s": item_timeout_s,
                "strategy": strategy,
                "quorum": quorum,
            }
        )
        return await _start(_app(ctx), ctx, {"map_reduce": spec}, items, options)

    @mcp.tool(description=TOOL_DOCS["route"], annotations=RUN)
    async def route(
        ctx: Context[Any],
        on: Expression,
        cases: StepMap,
        input: Any = None,
        default: StepJSON | None = None,
        options: Options | None = None,
    ) -> RunResult:
        spec = _clean({"on": on, "cases": cases, "default": default})
        return await _start(_app(ctx), ctx, {"route": spec}, input, options)

    @mcp.tool(description=TOOL_DOCS["refine"], annotations=RUN)
    async def refine(
        ctx: Context[Any],
        generate: StepJSON,
        evaluate: StepJSON,
        score: Expression,
        threshold: Annotated[float, Field(allow_inf_nan=False)],
        input: Any = None,
        max_iterations: int = 3,
        min_improvement: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0,
        time_budget_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None,
        cost_budget: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None,
        options: Options | None = None,
    ) -> RunResult:
        spec = _clean(
            {
                "generate": generate,
                "evaluate": evaluate,
                "score": score,
                "threshold": threshold,
                "max_iterations": max_iterations,
                "min_improvement": min_improvement,
                "time_budget_s": time_budget_s,
                "cost_budget": cost_budget,
            }
        )
        return await _start(_app(ctx), ctx, {"refine": spec}, input, options)

    @mcp.tool(description=TOOL_DOCS["await_approval"], annotations=RUN)
    async def await_approval(
        ctx: Context[Any],
        title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE_CHARS)],
        brief: Annotated[str, Field(max_length=MAX_BRIEF_CHARS)],
        # Filled by asking the human behind the client (not an argument the model gives); a plain accepted None
        # when the gate does not name `requester` or the client cannot ask. Decline or cancel: the gate stays open.
        answer: Annotated[ElicitationResult[ApprovalAnswer], Resolve(ask_requester)],
        payload: Any = None,
        approvers: Names | None = None,
        sla_s: Annotated[float, Field(gt=0, le=MAX_SLA_S, allow_inf_nan=False)] | None = None,
        escalate_to: Names | None = None,
        on_timeout: Literal["reject", "approve", "fail"] = "reject",
        payload_schema: dict[str, Any] | None = None,
        options: Options | None = None,
    ) -> RunResult:
        app = _app(ctx)
        spec = _clean(
            {
                "title": title,
                "brief": brief,
                "approvers": approvers,
                "sla_s": sla_s,
                "escalate_to": escalate_to,
                "on_timeout": on_timeout,
                "payload_schema": payload_schema,
            }
        )
        wait_s = (options or Options()).wait_s
        with tool_errors():
            check_caller_payload(payload, "payload", app.engine.limits)  # the gate's payload is the run's input
            record = await app.engine.start({"gate": spec}, payload, _run_options(options, current_principal()))
            if isinstance(answer, AcceptedElicitation) and isinstance(answer.data, ApprovalAnswer):
                # the human behind the client answered; the gate records them as `requester`
                opened = await _opened_gate(app, record.id)
                if opened is not None and opened.status == GATE_PENDING:
                    decided = answer.data
                    await gates.decide(app.store, opened.id, decided.decision, REQUESTER, decided.comment or None)
                    await app.engine.resume(record.id)
            return await _settle(app, ctx, record.id, wait_s)

    @mcp.tool(description=TOOL_DOCS["decide_gate"], annotations=RUN)
    async def decide_gate(
        ctx: Context[Any],
        gate_id: GateId,
        decision: Literal["approve", "reject", "modify"],
        comment: Annotated[str, Field(max_length=MAX_COMMENT_CHARS)] | None = None,
        payload: Any = None,
    ) -> RunResult:
        app = _app(ctx)
        principal = current_principal()
        if "approver" not in roles_of(app.settings, principal):
            raise PodiumToolError(
                "invalid_input",
                f"{principal!r} may not decide gates: only principals with the approver role can (over HTTP, with "
                "their bearer token); a model supervising runs never approves its own requests — ask a human to "
                "run `podium gates approve|reject GATE_ID`",
            )
        with tool_errors():
            gate = await gates.decide(app.store, gate_id, decision, principal, comment, payload)
            await app.engine.resume(gate.run_id)
            return await _settle(app, ctx, gate.run_id, 5.0)

    @mcp.tool(description=TOOL_DOCS["validate"], annotations=READ)
    async def validate(ctx: Context[Any], step: StepJSON | None = None, workflow: str | None = None) -> Validation:
        app = _app(ctx)
        if workflow is not None:
            raise PodiumToolError(
                "invalid_input", "this server stores no workflows yet; pass the step tree as `step` instead"
            )
        if step is None:
            raise PodiumToolError("invalid_input", "pass `step`: the step tree to check")
        with tool_errors():
            return await check_plan(app.engine, step)

    @mcp.tool(description=TOOL_DOCS["get_run"], annotations=READ)
    async def get_run(ctx: Context[Any], run_id: RunId, include_steps: bool = True) -> RunResult:
        with tool_errors():
            return await _settle(_app(ctx), ctx, run_id, 0, include_steps)

    @mcp.tool(description=TOOL_DOCS["wait_run"], annotations=READ)
    async def wait_run(ctx: Context[Any], run_id: RunId, timeout_s: Seconds = 20.0) -> RunResult:
        with tool_errors():
            return await _settle(_app(ctx), ctx, run_id, timeout_s)

    @mcp.tool(description=TOOL_DOCS["list_runs"], annotations=READ)
    async def list_runs(
        ctx: Context[Any], status: RunStatus | None = None, limit: Annotated[int, Field(ge=1, le=200)] = 20
    ) -> RunList:
        with tool_errors():
            records = await _app(ctx).store.list_runs(status, limit)
            return RunList(runs=[run_summary(r) for r in records])

    @mcp.tool(description=TOOL_DOCS["cancel_run"], annotations=RUN)
    async def cancel_run(
        ctx: Context[Any], run_id: RunId, reason: Annotated[str, Field(max_length=MAX_REASON_CHARS)] | None = None
    ) -> RunResult:
        app = _app(ctx)
        with tool_errors():
            record = await app.engine.cancel(run_id, reason, by=current_principal())
            return run_result(record, await app.engine.steps(record.id, payloads=False))

    @mcp.tool(description=TOOL_DOCS["find_tools"], annotations=READ)
    async def find_tools(
        ctx: Context[Any],
        query: Annotated[str, Field(max_length=MAX_QUERY_CHARS)] | None = None,
        tag: Annotated[str, Field(max_length=MAX_QUERY_CHARS)] | None = None,
    ) -> ToolList:
        app = _app(ctx)
        with tool_errors():
            needle = (query or "").lower()
            found = [
                info
                for info in catalogue(await app.registry.list_tools())
                if (not needle or needle in info.name.lower() or needle in info.description.lower())
                and (tag is None or tag in info.tags)
            ]
            return ToolList(tools=found)

    @mcp.tool(description=TOOL_DOCS["describe_tool"], annotations=READ)
    async def describe_tool(ctx: Context[Any], ref: Annotated[str, Field(max_length=MAX_REF_CHARS)]) -> ToolInfo:
        app = _app(ctx)
        with tool_errors():
            return await _tool_info(app, await app.registry.resolve(ref))

    @mcp.resource("podium://runs/{run_id}", mime_type="application/json", description="A run with its steps.")
    async def run_resource(run_id: str, ctx: Context[Any]) -> str:
        app = _app(ctx)
        with resource_errors():
            return (await _settle(app, ctx, run_id, 0)).model_dump_json(indent=2)

    @mcp.resource("podium://tools/{name}/{version}", mime_type="application/json", description="One version of a tool.")
    async def tool_resource(name: str, version: str, ctx: Context[Any]) -> str:
        app = _app(ctx)
        with resource_errors():
            return (await _tool_info(app, await app.registry.get(name, version))).model_dump_json(indent=2)

    @mcp.prompt(description="How to supervise work with Podium's tools: plan, start, wait, read gaps, recover.")
    def supervise(goal: str = "") -> str:
        return SUPERVISE_PROMPT + (f"\n\nThe goal: {goal}" if goal else "")

    return mcp
