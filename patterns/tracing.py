"""OpenTelemetry spans of runs and their steps, and the run a log line belongs to.

Podium uses the OpenTelemetry API only; what happens to spans is the process's tracer provider's business (``podium
serve`` installs the SDK's, exporting over OTLP, when the ``otel`` extra is installed and ``OTEL_*`` says where:
``server.telemetry``). Without one, the API is a no-op, and the engine does not even open step spans: ``recording()``
is checked once per run.

- A run's span is ``invoke_workflow {kind}`` (the kind of its root step). It is started when the run is created, so
  its trace id becomes the run's ``trace_id``: the caller's trace when the request carried one (``traceparent``,
  which the SDK's middleware extracts into the request's span), else a new trace. With no tracer provider, the
  caller's trace id still is the run's, and a run without one gets a random id of the same form.
- A run resumed later (after a restart, by another replica, after a gate was decided, by an operator's retry)
  starts a new trace, linked to the span that started the run (``runs.span_id``): its trace stays the run's.
- Each tool step is a span ``execute_tool {name}`` under the node that ran it; a composite node below the root
  (a fan-out, a map-reduce, a route, a refine, a chain, a delegation) is a span named by its kind, so a fan-out's
  branches are sibling spans under it, and a child run's span is under the delegation step that started it.
- A gate that waits is an event on its run's span (the span then ends: no span lasts days).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, StatusCode, TraceFlags

_tracer = trace.get_tracer("podium")

RUN: ContextVar[tuple[str, str] | None] = ContextVar("podium_run", default=None)
"""The run (id, trace id) whose work the current task does: the log lines it writes carry both."""

RUN_ID, STEP_PATH = "podium.run_id", "podium.step.path"
TOOL_NAME, TOOL_VERSION = "gen_ai.tool.name", "podium.tool.version"


def recording() -> bool:
    """Whether spans go anywhere: a tracer provider other than the API's default is installed."""
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def start_run(kind: str, links: tuple[Link, ...] = (), *, root: bool = False) -> Span:
    """A new run's span, not yet current: under the current span (the MCP request's, or the delegation step's),
    or with ``root`` the first of a new trace."""
    context = Context() if root else None
    span = _tracer.start_span(f"invoke_workflow {kind}", context=context, kind=SpanKind.INTERNAL, links=links)
    span.set_attribute("gen_ai.operation.name", "invoke_workflow")
    return span


def trace_id_of(span: Span) -> str:
    """The trace id a new run takes: its span's (the caller's trace, or a new one), else a random one."""
    context = span.get_span_context()
    if not context.is_valid:
        context = trace.get_current_span().get_span_context()  # no SDK: the caller's context, if it sent one
    return format(context.trace_id, "032x") if context.is_valid else uuid.uuid4().hex


def span_id_of(span: Span) -> str | None:
    context = span.get_span_context()
    return format(context.span_id, "016x") if context.is_valid else None


def resumed_run(kind: str, trace_id: str, span_id: str | None) -> Span:
    """The span of a run resumed later: the root of a new trace, linked to the span that started the run."""
    links: tuple[Link, ...] = ()
    if span_id is not None:
        try:
            first = SpanContext(
                int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
            )
        except ValueError:  # a trace id from before tracing (or written by hand): nothing to link to
            first = None
        if first is not None and first.is_valid:
            links = (Link(first, {"podium.link": "run started"}),)
    return start_run(kind, links, root=True)


@contextmanager
def running(span: Span, run_id: str, trace_id: str) -> Iterator[None]:
    """Make ``span`` current for a run's execution, and the run the one its log lines name."""
    span.set_attribute(RUN_ID, run_id)
    token = RUN.set((run_id, trace_id))
    try:
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            yield
    finally:
        RUN.reset(token)


def ended(span: Span, status: str, error: dict[str, Any] | None = None) -> None:
    """Record how a run's execution ended on its span (which ``running`` ends): ``error`` as a run records it."""
    span.set_attribute("podium.run.status", status)
    if error is not None:
        span.set_attribute("error.type", str(error.get("type", "error")))
        span.set_status(StatusCode.ERROR, str(error.get("message", ""))[:500])


@contextmanager
def step(
    name: str,
    run_id: str,
    path: str,
    tool: tuple[str, str] | None = None,
    parked: tuple[type[Exception], ...] = (),
) -> Iterator[Span]:
    """A step's span, current while it runs: ``execute_tool {name}`` for a tool (``tool``: name and version),
    else the node's kind. A failure sets ``error.type``; ``parked``: the exceptions that are control flow (a gate
    that waits), not failures."""
    attributes: dict[str, Any] = {RUN_ID: run_id, STEP_PATH: path}
    if tool is not None:
        attributes.update({TOOL_NAME: tool[0], TOOL_VERSION: tool[1], "gen_ai.operation.name": "execute_tool"})
    with _tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except parked:
            span.set_attribute("podium.step.status", "waiting")
            raise
        except Exception as exc:
            span.set_attribute("error.type", str(getattr(exc, "type", type(exc).__name__)))
            span.set_status(StatusCode.ERROR, str(getattr(exc, "message", exc))[:500])
            raise


def event(name: str, **attributes: Any) -> None:
    """An event on the current span (a gate that waits, a retry, a fallback)."""
    trace.get_current_span().add_event(name, {k: v for k, v in attributes.items() if v is not None})


def current_ids() -> tuple[str, str] | None:
    """The run id and trace id of the run whose work the current task does, if any."""
    return RUN.get()
