"""Traces as a collector sees them: `podium serve` with the otel extra exports its spans over OTLP/HTTP to a receiver
on 127.0.0.1, which decodes them; the span tree, names, attributes and trace id are checked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import RequestParamsMeta
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.helpers import PODIUM, REPO, podium, serve_args, server_env

pytestmark = pytest.mark.anyio

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP trace receiver: every span posted to /v1/traces, decoded, with its resource attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.posts = 0
        self.changed = threading.Condition()

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.changed:
            self.posts += 1
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "events": [e.name for e in span.events],
                                "links": [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                                "scope": scope_spans.scope.name,
                                "resource": resource,
                            }
                        )
            self.changed.notify_all()


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@contextmanager
def receiver() -> Iterator[tuple[Receiver, str]]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            received.take(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_chain_with_a_fan_out_is_one_trace_under_the_callers(tmp_path: Path, registry_file: Path) -> None:
    steps = [
        {"tool": "add"},
        {"fan_out": {"branches": [{"tool": "double", "input": {"value": {"$": "input.sum"}}}] * 3}},
        {"workflow": "doubling", "input": {"value": 5}},  # a child run
    ]
    workflows = tmp_path / "workflows.toml"
    workflows.write_text('[[workflow]]\nname = "doubling"\nversion = "1.0.0"\nstep = { tool = "double" }\n')
    args = [*serve_args(tmp_path, registry_file), "--registry", str(workflows)]
    with receiver() as (received, endpoint):
        env = {**server_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "podium-test"}
        params = StdioServerParameters(command=PODIUM, args=args, env=env, cwd=REPO)
        with anyio.fail_after(60):
            async with Client(params) as client:
                result = await client.call_tool(
                    "run_chain",
                    {"steps": steps, "input": {"a": 1, "b": 2}},
                    meta=cast(RequestParamsMeta, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}),
                )
            # the server has exited: its exporter sent what it held
            assert not result.is_error, result.content
            answer = result.structured_content
            assert answer is not None and answer["status"] == "succeeded", answer
            run_id = answer["run_id"]

            def complete() -> bool:
                return sum(bool(s["name"].startswith("execute_tool")) for s in received.spans) >= 5

            while not complete():
                await anyio.to_thread.run_sync(_wait, received, complete)
    assert answer["trace_id"] == CALLER_TRACE  # the run's trace is the caller's
    spans = [s for s in received.spans if s["trace_id"] == CALLER_TRACE]
    assert {s["resource"]["service.name"] for s in spans} == {"podium-test"}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    [request] = by_name["tools/call run_chain"]  # the SDK's span of the MCP request, under the caller's
    assert request["parent"] == CALLER_SPAN
    [run] = by_name["invoke_workflow chain"]
    assert run["parent"] == request["span_id"] and run["scope"] == "podium"
    assert run["attributes"]["podium.run_id"] == run_id and run["attributes"]["podium.run.status"] == "succeeded"
    [add] = by_name["execute_tool add"]
    assert add["parent"] == run["span_id"]
    assert add["attributes"] == {
        "podium.run_id": run_id,
        "podium.step.path": "0",
        "gen_ai.tool.name": "add",
        "podium.tool.version": "1.0.0",
        "gen_ai.operation.name": "execute_tool",
    }
    [fan_out] = by_name["fan_out"]
    assert fan_out["parent"] == run["span_id"] and fan_out["attributes"]["podium.step.path"] == "1"
    branches = [s for s in by_name["execute_tool double"] if s["attributes"]["podium.run_id"] == run_id]
    assert sorted(b["attributes"]["podium.step.path"] for b in branches) == [f"1/fan_out/{n}" for n in range(3)]
    assert {b["parent"] for b in branches} == {fan_out["span_id"]}  # siblings under their fan-out
    [delegation] = by_name["workflow"]
    assert delegation["parent"] == run["span_id"] and delegation["attributes"]["podium.step.path"] == "2"
    [child] = by_name["invoke_workflow tool"]  # the child run, under the step that started it, in the same trace
    assert child["parent"] == delegation["span_id"]
    child_id = child["attributes"]["podium.run_id"]
    assert child_id != run_id
    [child_step] = [s for s in by_name["execute_tool double"] if s["attributes"]["podium.run_id"] == child_id]
    assert child_step["parent"] == child["span_id"] and child_step["attributes"]["podium.step.path"] == ""


def _wait(received: Receiver, complete: Any) -> None:
    with received.changed:
        received.changed.wait_for(complete, timeout=1.0)


async def test_a_run_resumed_after_its_gate_starts_a_new_trace_linked_to_the_first(
    tmp_path: Path, registry_file: Path
) -> None:
    gate = {"title": "Pay ACME", "brief": "Invoice 42, EUR 1,200, matches the PO.", "approvers": ["ana"]}
    with receiver() as (received, endpoint):
        env = {**server_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        params = StdioServerParameters(command=PODIUM, args=serve_args(tmp_path, registry_file), env=env, cwd=REPO)
        with anyio.fail_after(90):
            async with Client(params) as client:
                steps = [{"tool": "add"}, {"gate": gate}]
                opened = await client.call_tool(
                    "run_chain", {"steps": steps, "input": {"a": 1, "b": 2}, "options": {"wait_s": 10}}
                )
                assert opened.structured_content is not None, opened.content
                run_id = opened.structured_content["run_id"]
                gate_id = opened.structured_content["gate"]["gate_id"]
                decided = await anyio.to_thread.run_sync(
                    lambda: podium("gates", "approve", gate_id, "--as", "ana", "--db", str(tmp_path / "podium.db"))
                )
                assert decided.returncode == 0, decided.stderr
                done = await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 30})
                assert done.structured_content is not None and done.structured_content["status"] == "succeeded"

            def complete() -> bool:
                return sum(bool(s["name"] == "invoke_workflow chain") for s in received.spans) >= 2

            while not complete():
                await anyio.to_thread.run_sync(_wait, received, complete)
    trace_id = opened.structured_content["trace_id"]
    first, resumed = sorted(
        (s for s in received.spans if s["name"] == "invoke_workflow chain"), key=lambda s: s["trace_id"] != trace_id
    )
    assert first["trace_id"] == trace_id and first["attributes"]["podium.run.status"] == "waiting"
    [waiting] = [s for s in received.spans if s["name"] == "gate" and s["trace_id"] == trace_id]
    assert waiting["parent"] == first["span_id"] and "podium.gate_opened" in waiting["events"]  # an event ...
    assert waiting["attributes"]["podium.step.status"] == "waiting" and "error.type" not in waiting["attributes"]
    assert "error.type" not in first["attributes"]  # ... and no span that lasts, nor an error
    assert resumed["trace_id"] != trace_id and resumed["parent"] == ""  # a new trace ...
    assert resumed["links"] == [(trace_id, first["span_id"])]  # ... linked to the span that started the run
    assert resumed["attributes"]["podium.run_id"] == run_id
    assert resumed["attributes"]["podium.run.status"] == "succeeded"
