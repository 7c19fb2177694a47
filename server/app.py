"""The MCP server: thin, typed adapters from MCP tools to the engine, the registry and the store."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import AcceptedElicitation, Context, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import AnyHttpUrl, Field, WithJsonSchema

from patterns import RUN_STATUSES
from patterns.contracts import check_caller_payload
from patterns.expressions import MAX_EXPRESSION_CHARS
from patterns.gates import MAX_COMMENT_CHARS
from patterns.steps import MAX_BRIEF_CHARS, MAX_NAME_CHARS, MAX_NAMES, MAX_REF_CHARS, MAX_SLA_S
from registry import RegistryFile, ToolSpec
from server.approvals import add_approval_routes
from server.auth import PrincipalTokens, current_principal, roles_of
from server.calls import (
    MAX_ID_CHARS,
    REQUESTER,
    ApprovalAnswer,
    Options,
    ask_requester,
    opened_gate,
    run_options,
    settle,
    start,
    start_workflow,
    step_view,
    wait_seconds,
)
from server.config import Settings
from server.errors import PodiumToolError, resource_errors, tool_errors
from server.lifespan import AppState, Running, app_state, lifespan
from server.results import (
    DEFAULT_STEP_LIMIT,
    MAX_STEP_LIMIT,
    EventAnswer,
    RunList,
    RunResult,
    RunSteps,
    ToolInfo,
    ToolMatches,
    Validation,
    catalogue,
    check_plan,
    check_workflow,
    path_key,
    run_result,
    run_summary,
    tool_info,
    tool_summary,
    workflow_catalogue,
    workflow_summary,
)
from server.stats import RESOURCE_TOOLS, WindowError, read_stats
from server.stdio import refuse_oversized
from server.surface import PodiumServer, compact, reply
from server.texts import INSTRUCTIONS, SUPERVISE_PROMPT, TOOL_DOCS
from server.webhooks import add_event_routes
from storage import GATE_PENDING

log = logging.getLogger("podium.server")
StepJSON = dict[str, Any]
# Lists and maps of steps are taken as they arrive, with the schema clients see: the step language checks them
# (bounds first, without copying), where validating them here would copy every step of a large request first.
StepList = Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "object"}, "minItems": 1})]
StepMap = Annotated[Any, WithJsonSchema({"type": "object", "additionalProperties": {"type": "object"}})]
Strategy = Literal["all", "best_effort", "quorum"]
STEPS_FIELD = Field(description="Steps in order; each gets the previous step's output unless it has `input`.")
# limits on arguments (the step language's own are in patterns.steps and patterns.expressions)
MAX_REASON_CHARS = 1024
MAX_QUERY_CHARS = 200
MAX_TITLE_CHARS = 200
RunStatus = Literal[
    "pending", "running", "waiting", "succeeded", "partial", "failed", "rejected", "cancelled", "timed_out",
    "needs_attention",
]  # fmt: skip
assert set(get_args(RunStatus)) == set(RUN_STATUSES)
Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]], Field(max_length=MAX_NAMES)]


StepLimit = Annotated[int, Field(ge=0, le=MAX_STEP_LIMIT, description="At most this many steps in the result.")]
RunId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, description="A run's id, from a RunResult.")]
GateId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, description="A gate's id, from RunResult.gate.")]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Expression = Annotated[str, Field(min_length=1, max_length=MAX_EXPRESSION_CHARS)]


def _clean(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop arguments left at None so the step tree holds only what the caller said."""
    return {k: v for k, v in spec.items() if v is not None}


async def _tool_info(app: AppState, spec: ToolSpec) -> ToolInfo:
    versions = [s.version for s in await app.registry.versions(spec.name)]
    return tool_info(spec, versions)


# only what differs from the defaults (not read-only, destructive, not idempotent, open world): clients apply those
RUN = ToolAnnotations(destructive_hint=False)
READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def build_server(
    settings: Settings,
    *,
    http_url: str | None = None,
    running: Running | None = None,
    background: bool = False,
    registry_files: Sequence[RegistryFile] | None = None,
) -> MCPServer:
    """The Podium MCP server over the database and registry files that ``settings`` name.

    Args:
        settings: database, limits, registry files and principals.
        http_url: the server's own base URL when it will serve HTTP; with principals configured, requests then
            need a bearer token of one of them.
        running: where the server keeps its state (store, registry, engine) from start-up until its engine has
            stopped and its store is closed, for whoever drives the process (e.g. to drain the engine on SIGTERM).
        background: answer at once and open the store, registry and engine in the background (``lifespan``);
            requests that need them wait. ``podium serve`` over stdio does this.
        registry_files: ``settings.registry``'s files, already loaded (else they are loaded at start-up).
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
    running = running if running is not None else Running()
    mcp = PodiumServer(
        "podium",
        version="0.1.0",
        instructions=INSTRUCTIONS,
        lifespan=lifespan(settings, running, http_url, background=background, registry_files=registry_files),
        **auth,
    )
    mcp.middleware.append(refuse_oversized)
    if http_url is not None:
        add_approval_routes(mcp, running, urlsplit(http_url).hostname or "")
        add_event_routes(mcp, running, urlsplit(http_url).hostname or "")

    @mcp.tool(description=TOOL_DOCS["run_chain"], annotations=RUN)
    async def run_chain(
        ctx: Context[Any],
        steps: Annotated[StepList, STEPS_FIELD],
        input: Any = None,
        options: Options | None = None,
    ) -> CallToolResult:
        return reply(await start(await app_state(ctx), ctx, {"chain": steps}, {} if input is None else input, options))

    @mcp.tool(description=TOOL_DOCS["run_workflow"], annotations=RUN)
    async def run_workflow(
        ctx: Context[Any],
        workflow: Annotated[str, Field(min_length=1, max_length=MAX_REF_CHARS)],
        input: Any = None,
        options: Options | None = None,
    ) -> CallToolResult:
        app = await app_state(ctx)
        return reply(await start_workflow(app, ctx, workflow, {} if input is None else input, options))

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
    ) -> CallToolResult:
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
        return reply(await start(await app_state(ctx), ctx, {"fan_out": spec}, {} if input is None else input, options))

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
    ) -> CallToolResult:
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
        return reply(await start(await app_state(ctx), ctx, {"map_reduce": spec}, items, options))

    @mcp.tool(description=TOOL_DOCS["route"], annotations=RUN)
    async def route(
        ctx: Context[Any],
        on: Expression,
        cases: StepMap,
        input: Any = None,
        default: StepJSON | None = None,
        options: Options | None = None,
    ) -> CallToolResult:
        spec = _clean({"on": on, "cases": cases, "default": default})
        return reply(await start(await app_state(ctx), ctx, {"route": spec}, {} if input is None else input, options))

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
    ) -> CallToolResult:
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
        return reply(await start(await app_state(ctx), ctx, {"refine": spec}, {} if input is None else input, options))

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
    ) -> CallToolResult:
        app = await app_state(ctx)
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
        with tool_errors():
            check_caller_payload(payload, "payload", app.engine.limits)  # the gate's payload is the run's input
            record = await app.engine.start({"gate": spec}, payload, run_options(options, current_principal()))
            if isinstance(answer, AcceptedElicitation) and isinstance(answer.data, ApprovalAnswer):
                # the human behind the client answered; the gate records them as `requester`
                opened = await opened_gate(app, record.id)
                if opened is not None and opened.status == GATE_PENDING:
                    decided = answer.data
                    await app.engine.decide_gate(opened.id, decided.decision, REQUESTER, decided.comment or None)
            return reply(
                await settle(app, ctx, record.id, wait_seconds(app, options), (options or Options()).step_limit)
            )

    @mcp.tool(description=TOOL_DOCS["decide_gate"], annotations=RUN)
    async def decide_gate(
        ctx: Context[Any],
        gate_id: GateId,
        decision: Literal["approve", "reject", "modify"],
        comment: Annotated[str, Field(max_length=MAX_COMMENT_CHARS)] | None = None,
        payload: Any = None,
    ) -> CallToolResult:
        app = await app_state(ctx)
        principal = current_principal()
        if "approver" not in roles_of(app.settings, principal):
            raise PodiumToolError(
                "invalid_input",
                f"{principal!r} may not decide gates: only principals with the approver role can (over HTTP, with "
                "their bearer token); a model supervising runs never approves its own requests — ask a human to "
                "run `podium gates approve|reject GATE_ID`",
            )
        with tool_errors():
            gate = await app.engine.decide_gate(gate_id, decision, principal, comment, payload)
            return reply(await settle(app, ctx, gate.run_id, 5.0))

    @mcp.tool(description=TOOL_DOCS["validate"], annotations=READ)
    async def validate(
        ctx: Context[Any], step: StepJSON | None = None, workflow: str | None = None
    ) -> Annotated[CallToolResult, Validation]:
        app = await app_state(ctx)
        if (step is None) == (workflow is None):
            raise PodiumToolError(
                "invalid_input", "pass one of `step` (a step tree) or `workflow` (a published workflow, name@spec)"
            )
        with tool_errors():
            if workflow is not None:
                return reply(await check_workflow(app.engine, await app.registry.workflow(workflow)))
            return reply(await check_plan(app.engine, step))

    @mcp.tool(description=TOOL_DOCS["get_run"], annotations=READ)
    async def get_run(
        ctx: Context[Any], run_id: RunId, include_steps: bool = True, step_limit: StepLimit = DEFAULT_STEP_LIMIT
    ) -> Annotated[CallToolResult, RunResult]:  # the one tool that declares the RunResult schema (see surface)
        with tool_errors():
            return reply(await settle(await app_state(ctx), ctx, run_id, 0, step_limit if include_steps else 0))

    @mcp.tool(description=TOOL_DOCS["wait_run"], annotations=READ)
    async def wait_run(
        ctx: Context[Any], run_id: RunId, timeout_s: Seconds | None = None, step_limit: StepLimit = DEFAULT_STEP_LIMIT
    ) -> CallToolResult:
        app = await app_state(ctx)
        wait_s = app.settings.default_wait_s if timeout_s is None else timeout_s
        with tool_errors():
            return reply(await settle(app, ctx, run_id, wait_s, step_limit))

    @mcp.tool(description=TOOL_DOCS["list_runs"], annotations=READ)
    async def list_runs(
        ctx: Context[Any],
        status: RunStatus | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        parent_run_id: Annotated[str, Field(max_length=MAX_ID_CHARS)] | None = None,
    ) -> Annotated[CallToolResult, RunList]:
        with tool_errors():
            records = await (await app_state(ctx)).store.list_runs(status, limit, parent_run_id)
            return reply(RunList(runs=[run_summary(r) for r in records]))

    @mcp.tool(description=TOOL_DOCS["cancel_run"], annotations=RUN)
    async def cancel_run(
        ctx: Context[Any], run_id: RunId, reason: Annotated[str, Field(max_length=MAX_REASON_CHARS)] | None = None
    ) -> CallToolResult:
        app = await app_state(ctx)
        with tool_errors():
            record = await app.engine.cancel(run_id, reason, by=current_principal())
            steps = await step_view(app, record, DEFAULT_STEP_LIMIT)
            return reply(run_result(record, steps, max_output_bytes=app.settings.max_result_bytes))

    @mcp.tool(description=TOOL_DOCS["emit_event"], annotations=RUN)
    async def emit_event(
        ctx: Context[Any],
        type: Annotated[str, Field(min_length=1, max_length=128)],
        payload: Any = None,
        key: str | None = None,  # its limits are checked (and named) with the event's
        event_id: str | None = None,
    ) -> Annotated[CallToolResult, EventAnswer]:
        app = await app_state(ctx)
        with tool_errors():
            answer = await app.engine.emit(type, payload, key=key, event_id=event_id, source=current_principal())
            return reply(EventAnswer.model_validate(answer))

    @mcp.tool(description=TOOL_DOCS["find_tools"], annotations=READ)
    async def find_tools(
        ctx: Context[Any],
        query: Annotated[str, Field(max_length=MAX_QUERY_CHARS)] | None = None,
        tag: Annotated[str, Field(max_length=MAX_QUERY_CHARS)] | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> Annotated[CallToolResult, ToolMatches]:
        app = await app_state(ctx)
        with tool_errors():
            needle = (query or "").lower()
            found = [
                tool_summary(info)
                for info in catalogue(await app.registry.list_tools())
                if (not needle or needle in info.name.lower() or needle in info.description.lower())
                and (tag is None or tag in info.tags)
            ]
            if tag is None:  # workflows have no tags
                found += [
                    workflow_summary(info)
                    for info in workflow_catalogue(await app.registry.list_workflows())
                    if not needle or needle in info.name.lower() or needle in info.description.lower()
                ]
            return reply(ToolMatches(tools=found[:limit], total=len(found)))

    @mcp.tool(description=TOOL_DOCS["describe_tool"], annotations=READ)
    async def describe_tool(
        ctx: Context[Any], ref: Annotated[str, Field(max_length=MAX_REF_CHARS)]
    ) -> Annotated[CallToolResult, ToolInfo]:
        app = await app_state(ctx)
        with tool_errors():
            return reply(await _tool_info(app, await app.registry.resolve(ref)))

    @mcp.resource(
        "podium://workflows/{name}",
        mime_type="application/json",
        description="A published workflow: its newest version (step tree, schemas, limits) and every version.",
    )
    async def workflow_resource(name: str, ctx: Context[Any]) -> str:
        app = await app_state(ctx)
        with resource_errors():
            [info] = workflow_catalogue(await app.registry.workflow_versions(name))
            return compact(info)

    @mcp.resource("podium://runs/{run_id}", mime_type="application/json", description="A run, as get_run gives it.")
    async def run_resource(run_id: str, ctx: Context[Any]) -> str:
        app = await app_state(ctx)
        with resource_errors():
            return compact(await settle(app, ctx, run_id, 0))

    @mcp.resource(
        "podium://runs/{run_id}/steps", mime_type="application/json", description="Every step of a run, in tree order."
    )
    async def run_steps_resource(run_id: str, ctx: Context[Any]) -> str:
        app = await app_state(ctx)
        with resource_errors():
            record = await app.engine.get(run_id)
            every = run_result(record, await app.engine.steps(run_id, payloads=False), step_limit=None)
            return compact(RunSteps(run_id=run_id, steps=sorted(every.steps, key=lambda s: path_key(s.path))))

    @mcp.resource("podium://runs/{run_id}/output", mime_type="application/json", description="A run's whole output.")
    async def run_output_resource(run_id: str, ctx: Context[Any]) -> str:
        app = await app_state(ctx)
        with resource_errors():
            record = await app.engine.get(run_id)
            return json.dumps(record.output, separators=(",", ":"), ensure_ascii=False)

    @mcp.resource("podium://tools/{name}/{version}", mime_type="application/json", description="One version of a tool.")
    async def tool_resource(name: str, version: str, ctx: Context[Any]) -> str:
        app = await app_state(ctx)
        with resource_errors():
            return compact(await _tool_info(app, await app.registry.get(name, version)))

    @mcp.resource(
        "podium://stats",
        mime_type="application/json",
        description="The last 24 h: per tool version (the 100 most called) calls, error rate, p50/p95/p99 ms, cost; "
        "runs per pattern.",
    )
    async def stats_resource() -> str:  # a static resource gets no context: the state is the running server's
        state = running.state
        if state is None:
            raise ResourceError("unavailable: the server is starting or shutting down")
        with resource_errors():
            return compact(await read_stats(state.store, limit=RESOURCE_TOOLS))

    @mcp.resource(
        "podium://stats/{window}",
        mime_type="application/json",
        description="As podium://stats over another window: 30m, 6h, 7d, or all.",
    )
    async def stats_window_resource(window: str, ctx: Context[Any]) -> str:
        app = await app_state(ctx)
        with resource_errors():
            try:
                return compact(await read_stats(app.store, window, limit=RESOURCE_TOOLS))
            except WindowError as exc:
                raise ResourceError(f"invalid_input: window {exc}") from None

    @mcp.prompt(description="How to supervise work with Podium's tools: plan, start, wait, read gaps, recover.")
    def supervise(goal: str = "") -> str:
        return SUPERVISE_PROMPT + (f"\n\nThe goal: {goal}" if goal else "")

    return mcp
