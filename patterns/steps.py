"""The step language: JSON step trees as pydantic models (a discriminated union on the step's kind key).

A step is a tool call ``{"tool": "name@spec", ...}``, a child run of a published workflow ``{"workflow":
"name@spec", "budget"?, "deadline_s"?}``, or a composite: ``{"chain": [...]}``,
``{"fan_out": {...}}``, ``{"map_reduce": {...}}``, ``{"route": {...}}``, ``{"refine": {...}}``. Composites nest
freely. Every step may carry ``id`` (its output is then ``steps.<id>`` in templates), ``input`` (a template that
replaces what flows in), ``timeout_s`` and ``critical`` (``false``: a failure leaves a named gap instead of failing
the run).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from patterns.errors import InvalidStep, clip
from registry.models import RetryPolicy, check_json_schema
from storage.records import dumps

KINDS = ("tool", "chain", "fan_out", "map_reduce", "route", "refine", "gate", "workflow")
Strategy = Literal["all", "best_effort", "quorum"]
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
MAX_REF_CHARS = 256
MAX_CASE_KEY_CHARS = 256
MAX_BRIEF_CHARS = 16_384
MAX_NAME_CHARS = 128
MAX_NAMES = 32
MAX_SLA_S = 365 * 86_400.0
MAX_PROBLEMS_SHOWN = 10
_MODEL = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
Ref = Annotated[str, Field(min_length=1, max_length=MAX_REF_CHARS)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class _Step(BaseModel):
    model_config = _MODEL

    id: str | None = Field(None, pattern=ID_PATTERN, description="Name for this step's output in `steps.<id>`.")
    input: Any = Field(None, description='Template replacing the flowing input; {"$": "<JMESPath>"} leaves.')
    timeout_s: float | None = Field(None, gt=0, description="Timeout for this step (per attempt for tool steps).")
    critical: bool = Field(True, description="False: a failure becomes a named gap (partial result).")

    @property
    def has_input(self) -> bool:
        return "input" in self.model_fields_set

    @property
    def kind(self) -> str:
        raise NotImplementedError


class ToolStep(_Step):
    tool: Ref = Field(description="Tool reference: name, name@1.2.3, name@^1.2, name@~1.2.3, name@>=1,<2.")
    retry: RetryPolicy | None = None
    fallback: Ref | None = Field(None, description="Tool reference called with the same input if this one fails.")

    @property
    def kind(self) -> str:
        return "tool"


class ChildBudget(BaseModel):
    model_config = _MODEL

    max_steps: int | None = Field(None, ge=1, description="Tool steps the child run may take (from the parent's).")
    max_cost: float | None = Field(None, ge=0, description="Cost the child run may spend (from the parent's).")


class WorkflowStep(_Step):
    """Delegation: run a published workflow as a child run and take its output."""

    workflow: Ref = Field(description="Workflow reference: name, name@1.2.3, name@^1.")
    budget: ChildBudget | None = None
    deadline_s: float | None = Field(None, gt=0, description="The child run's time-out (within the parent's).")

    @property
    def kind(self) -> str:
        return "workflow"


class ChainStep(_Step):
    chain: list[Step] = Field(min_length=1)

    @property
    def kind(self) -> str:
        return "chain"


class ParallelSpec(BaseModel):
    """What fan-out and map-reduce share: the strategy, its quorum, and the concurrency cap."""

    model_config = _MODEL

    strategy: Strategy = "all"
    quorum: int | None = Field(None, ge=1)
    max_concurrency: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _quorum(self) -> ParallelSpec:
        if self.strategy == "quorum" and self.quorum is None:
            raise ValueError("strategy 'quorum' needs `quorum`: the number of successes that decides")
        if self.strategy != "quorum" and self.quorum is not None:
            raise ValueError(f"`quorum` applies only to strategy 'quorum', not {self.strategy!r}")
        return self


class FanOutSpec(ParallelSpec):
    branches: list[Step] = Field(min_length=1)
    branch_timeout_s: float | None = Field(None, gt=0)
    reduce: Step | None = None

    @model_validator(mode="after")
    def _quorum_fits(self) -> FanOutSpec:
        if self.quorum is not None and self.quorum > len(self.branches):
            raise ValueError(f"quorum {self.quorum} is more than the {len(self.branches)} branches")
        return self


class FanOutStep(_Step):
    fan_out: FanOutSpec

    @property
    def kind(self) -> str:
        return "fan_out"


class MapReduceSpec(ParallelSpec):
    items: Any = Field(None, description="A list, or a template giving one; default: the step's input.")
    map: Step
    reduce: Step | None = None
    chunk_size: int = Field(1, ge=1)
    item_timeout_s: float | None = Field(None, gt=0)


class MapReduceStep(_Step):
    map_reduce: MapReduceSpec

    @property
    def kind(self) -> str:
        return "map_reduce"


class RouteSpec(BaseModel):
    model_config = _MODEL

    on: str = Field(min_length=1, description="JMESPath over the template context, e.g. `input.category`.")
    cases: dict[Annotated[str, Field(max_length=MAX_CASE_KEY_CHARS)], Step] = Field(min_length=1)
    default: Step | None = None


class RouteStep(_Step):
    route: RouteSpec

    @property
    def kind(self) -> str:
        return "route"


class RefineSpec(BaseModel):
    model_config = _MODEL

    generate: Step
    evaluate: Step
    score: str = Field(min_length=1, description="JMESPath into the evaluator's output giving a number.")
    threshold: float
    max_iterations: int = Field(3, ge=1)
    min_improvement: float = Field(0.0, ge=0)
    time_budget_s: float | None = Field(None, gt=0)
    cost_budget: float | None = Field(None, ge=0)


class RefineStep(_Step):
    refine: RefineSpec

    @property
    def kind(self) -> str:
        return "refine"


DEFAULT_SLA_S = 86_400.0


class GateSpec(BaseModel):
    """A human decision point: a brief and a payload for the approver, an SLA, an escalation path."""

    model_config = _MODEL

    title: str = Field(min_length=1, max_length=200)
    brief: str = Field("", max_length=MAX_BRIEF_CHARS, description="What the approver needs to decide in minutes.")
    payload: Any = Field(None, description="What is approved (a template); default: the gate's input.")
    payload_schema: dict[str, Any] | None = Field(None, description="JSON Schema a `modify` must satisfy.")
    approvers: list[Name] = Field(
        default_factory=list,
        max_length=MAX_NAMES,
        description="Who may decide; 'requester' asks the human behind the requesting client through elicitation.",
    )
    sla_s: float = Field(DEFAULT_SLA_S, gt=0, le=MAX_SLA_S, description="Seconds each approver has before escalation.")
    escalate_to: list[Name] = Field(
        default_factory=list, max_length=MAX_NAMES, description="Who is asked next, in order, as SLAs pass."
    )
    on_timeout: Literal["reject", "approve", "fail"] = "reject"

    @model_validator(mode="after")
    def _schema(self) -> GateSpec:
        check_json_schema(self.payload_schema, "payload_schema")
        return self


class GateStep(_Step):
    gate: GateSpec

    @property
    def kind(self) -> str:
        return "gate"


def _kind_of(value: Any) -> str | None:
    if isinstance(value, _Step):
        return value.kind
    if isinstance(value, dict):
        found = [k for k in KINDS if k in value]
        return found[0] if len(found) == 1 else None
    return None


_UNION_ERROR = "a step is an object with exactly one of the keys " + ", ".join(KINDS)

Step = Annotated[
    Union[  # noqa: UP007 - pydantic needs the Union spelled out for a callable discriminator with tags
        Annotated[ToolStep, Tag("tool")],
        Annotated[ChainStep, Tag("chain")],
        Annotated[FanOutStep, Tag("fan_out")],
        Annotated[MapReduceStep, Tag("map_reduce")],
        Annotated[RouteStep, Tag("route")],
        Annotated[RefineStep, Tag("refine")],
        Annotated[GateStep, Tag("gate")],
        Annotated[WorkflowStep, Tag("workflow")],
    ],
    Discriminator(_kind_of, custom_error_type="step_kind", custom_error_message=_UNION_ERROR),
]
AnyStep = ToolStep | ChainStep | FanOutStep | MapReduceStep | RouteStep | RefineStep | GateStep | WorkflowStep

for _model in (
    ChainStep,
    FanOutSpec,
    FanOutStep,
    MapReduceSpec,
    MapReduceStep,
    RouteSpec,
    RouteStep,
    RefineSpec,
    GateStep,
):
    _model.model_rebuild()


class _Root(BaseModel):
    step: Step


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = clip(part, 60)  # a route case key is the caller's text
            out += f".{part}" if out else part
    return out or "(root)"


def _walk(data: Any, loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], Any]:
    """Follow ``loc`` into ``data``, dropping the union tags pydantic inserts before a step's own keys."""
    clean: list[int | str] = []
    just_skipped = False
    for part in loc:
        if not just_skipped and isinstance(part, str) and _kind_of(data) == part:
            just_skipped = True
            continue
        just_skipped = False
        clean.append(part)
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            data = None
    return tuple(clean), data


def describe_validation_error(exc: ValidationError, data: Any, prefix: tuple[int | str, ...] = ()) -> str:
    """One readable line per problem: where in the step tree, what is wrong, what is allowed."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc, value = _walk(data, tuple(err["loc"])[len(prefix) :])
        where = _location(loc)
        if err["type"] == "step_kind":
            if isinstance(value, dict):
                kinds = [k for k in KINDS if k in value]
                if len(kinds) > 1:
                    lines.append(f"{where}: a step has one kind, found {', '.join(kinds)}")
                else:
                    keys = sorted(clip(str(k), 40) for k in list(value)[:MAX_PROBLEMS_SHOWN])
                    more = f" and {len(value) - len(keys)} more" if len(value) > len(keys) else ""
                    lines.append(
                        f"{where}: unknown step kind (keys: {', '.join(keys) or 'none'}{more}); {_UNION_ERROR}"
                    )
            else:
                lines.append(f"{where}: expected a step object, got {type(value).__name__}; {_UNION_ERROR}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg}")
    # pydantic reports every union member tried on some failures; keep each line once, in order
    unique = list(dict.fromkeys(lines))
    shown = "; ".join(unique[:MAX_PROBLEMS_SHOWN])
    if len(unique) > MAX_PROBLEMS_SHOWN:
        shown += f"; and {len(unique) - MAX_PROBLEMS_SHOWN} more problems"
    return shown


def parse_step(data: Any) -> AnyStep:
    """Validate a step tree given as JSON data. Raises ``InvalidStep`` naming every problem and where it is."""
    if isinstance(data, _Step):
        return data  # type: ignore[return-value]
    try:
        return _Root.model_validate({"step": data}).step
    except ValidationError as exc:
        raise InvalidStep(f"invalid step: {describe_validation_error(exc, data, ('step',))}") from None


def step_json(data: Any) -> str:
    """A raw step tree as the JSON text it is stored as. Raises ``InvalidStep`` if JSON cannot carry it."""
    try:
        return dumps(data)
    except RecursionError:
        raise InvalidStep("invalid step: the tree nests too deeply to be stored") from None
    except (TypeError, ValueError) as exc:
        raise InvalidStep(f"invalid step: the tree is not JSON data: {clip(str(exc))}") from None


def children(step: AnyStep) -> list[tuple[str, AnyStep]]:
    """The direct sub-steps of ``step`` with their path segment (relative to ``step``'s path)."""
    if isinstance(step, ChainStep):
        return [(str(i), s) for i, s in enumerate(step.chain)]
    if isinstance(step, FanOutStep):
        out = [(f"fan_out/{i}", s) for i, s in enumerate(step.fan_out.branches)]
        if step.fan_out.reduce is not None:
            out.append(("fan_out/reduce", step.fan_out.reduce))
        return out
    if isinstance(step, MapReduceStep):
        out = [("map/*", step.map_reduce.map)]
        if step.map_reduce.reduce is not None:
            out.append(("reduce", step.map_reduce.reduce))
        return out
    if isinstance(step, RouteStep):
        out = [(f"route/{route_segment(k)}", s) for k, s in step.route.cases.items()]
        if step.route.default is not None:
            out.append(("route/default", step.route.default))
        return out
    if isinstance(step, RefineStep):
        return [("refine/*/generate", step.refine.generate), ("refine/*/evaluate", step.refine.evaluate)]
    return []


def route_segment(case: str) -> str:
    """The path segment of a route case: ``case=<value>`` with ``/`` and ``%`` escaped."""
    return "case=" + case.replace("%", "%25").replace("/", "%2F")


def join(parent: str, *parts: str) -> str:
    return "/".join(p for p in (parent, *parts) if p)
