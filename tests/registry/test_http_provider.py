"""The ``http`` provider against a real local HTTP server: JSON in and out, which failures are retried, Retry-After,
the response size limit and header expansion."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from patterns import Engine, Limits
from registry import Registry, ToolSpec
from storage import Store

pytestmark = pytest.mark.anyio


class Endpoints(BaseHTTPRequestHandler):
    calls: dict[str, list[float]] = {}
    seen_headers: dict[str, dict[str, str]] = {}

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.calls.setdefault(url.path, []).append(time.monotonic())
        if url.path == "/lookup":
            found = {k: v[0] for k, v in parse_qs(url.query).items()}
            self._answer(200, json.dumps({"found": found}).encode())
        else:
            self._answer(404, b"no such endpoint")

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        self.calls.setdefault(path, []).append(time.monotonic())
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
        Endpoints.seen_headers[path] = {k.lower(): v for k, v in self.headers.items()}
        if path == "/quote":
            self._answer(200, json.dumps({"price": payload["weight_kg"] * 2.5, "currency": "EUR"}).encode())
        elif path == "/busy":
            if len(self.calls[path]) < 3:
                self._answer(503, b"try later", {"Retry-After": "0.3"})
            else:
                self._answer(200, b'{"ok": true}')
        elif path == "/bad":
            self._answer(422, b'{"detail": "weight_kg must be positive"}')
        elif path == "/huge":
            self._answer(200, b'{"blob": "' + b"x" * 300_000 + b'"}')
        elif path == "/text":
            self._answer(200, b"plain words")
        else:
            self._answer(404, b"no such endpoint")


@pytest.fixture
def endpoint() -> Iterator[str]:
    Endpoints.calls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoints)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def http_tool(name: str, url: str, **provider: Any) -> ToolSpec:
    return ToolSpec.model_validate(
        {"name": name, "version": "1.0.0", "idempotent": True, "provider": {"type": "http", "url": url, **provider}}
    )


async def run(store: Store, registry: Registry, step: dict[str, Any], **limits: Any) -> Any:
    async with Engine(store, registry, Limits(**limits)) as engine:
        return await engine.run(step, {})


async def test_json_goes_in_and_comes_out(store: Store, registry: Registry, endpoint: str) -> None:
    await registry.register_all(
        [
            http_tool("quote", f"{endpoint}/quote", headers={"X-Key": "${PODIUM_TEST_KEY}"}),
            http_tool("lookup", f"{endpoint}/lookup", method="GET"),
            http_tool("words", f"{endpoint}/text"),
        ]
    )
    os.environ["PODIUM_TEST_KEY"] = "s3cret"
    try:
        quoted = await run(store, registry, {"tool": "quote", "input": {"weight_kg": 4}})
    finally:
        del os.environ["PODIUM_TEST_KEY"]
    looked = await run(store, registry, {"tool": "lookup", "input": {"id": "C-7"}})
    words = await run(store, registry, {"tool": "words", "input": {}})
    assert quoted.output == {"price": 10.0, "currency": "EUR"} and Endpoints.seen_headers["/quote"]["x-key"] == "s3cret"
    assert looked.output == {"found": {"id": "C-7"}}
    assert words.output == {"text": "plain words"}


async def test_a_busy_endpoint_is_retried_after_what_it_asks(store: Store, registry: Registry, endpoint: str) -> None:
    await registry.register(http_tool("busy", f"{endpoint}/busy"))
    step = {"tool": "busy", "input": {}, "retry": {"max_attempts": 3, "initial_s": 0.01, "jitter": 0}}
    done = await run(store, registry, step)
    calls = Endpoints.calls["/busy"]
    assert done.status == "succeeded" and done.output == {"ok": True} and len(calls) == 3
    assert min(b - a for a, b in zip(calls, calls[1:], strict=False)) >= 0.28  # Retry-After: 0.3, not 0.01


async def test_refusals_and_oversized_answers_are_not_retried(store: Store, registry: Registry, endpoint: str):
    await registry.register_all([http_tool("bad", f"{endpoint}/bad"), http_tool("huge", f"{endpoint}/huge")])
    retry = {"max_attempts": 3, "initial_s": 0}
    bad = await run(store, registry, {"tool": "bad", "input": {"weight_kg": -1}, "retry": retry})
    huge = await run(store, registry, {"tool": "huge", "input": {}, "retry": retry}, max_payload_bytes=100_000)
    assert bad.status == "failed" and len(Endpoints.calls["/bad"]) == 1
    assert 'answered 422: {"detail": "weight_kg must be positive"}' in bad.error["message"]
    assert "(permanent: not retried)" in bad.error["message"]
    assert huge.status == "failed" and len(Endpoints.calls["/huge"]) == 1
    assert "the response is over 100000 bytes (max_payload_bytes)" in huge.error["message"]


async def test_an_unreachable_endpoint_is_a_transient_failure(store: Store, registry: Registry) -> None:
    await registry.register(http_tool("gone", "http://127.0.0.1:1/nothing"))
    failed = await run(store, registry, {"tool": "gone", "input": {}, "retry": {"max_attempts": 2, "initial_s": 0}})
    assert failed.status == "failed" and failed.error["type"] == "tool_failed"
    assert (
        "(attempt 2 of 2)" in failed.error["message"]
        and "POST http://127.0.0.1:1/nothing failed" in failed.error["message"]
    )


async def test_a_header_naming_an_unset_variable_fails_without_calling(
    store: Store, registry: Registry, endpoint: str
) -> None:
    await registry.register(http_tool("quote", f"{endpoint}/quote", headers={"X-Key": "${PODIUM_NOT_SET_ANYWHERE}"}))
    failed = await run(store, registry, {"tool": "quote", "input": {"weight_kg": 1}})
    assert failed.status == "failed" and "/quote" not in Endpoints.calls
    assert "uses ${PODIUM_NOT_SET_ANYWHERE}, which is not set in Podium's environment" in failed.error["message"]


async def test_the_call_carries_the_runs_trace_context(store: Store, registry: Registry, endpoint: str) -> None:
    """With no tracer provider installed, the caller's context still flows: the run takes its trace id, and the
    endpoint gets a traceparent of that trace (an SDK would put the step's span id in it)."""
    await registry.register(http_tool("quote", f"{endpoint}/quote"))
    trace_id, span_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
    caller = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(caller)):
        done = await run(store, registry, {"tool": "quote", "input": {"weight_kg": 1}})
    untraced = await run(store, registry, {"tool": "quote", "input": {"weight_kg": 1}})
    assert done.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and done.status == "succeeded"
    assert untraced.trace_id != done.trace_id and len(untraced.trace_id) == 32
    assert "traceparent" not in Endpoints.seen_headers["/quote"]  # the untraced call, last: nothing to carry
    Endpoints.seen_headers.clear()
    with trace.use_span(NonRecordingSpan(caller)):
        await run(store, registry, {"tool": "quote", "input": {"weight_kg": 2}})
    assert Endpoints.seen_headers["/quote"]["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
