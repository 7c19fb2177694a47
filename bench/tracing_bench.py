"""What tracing costs a chain step: no tracer provider (the OpenTelemetry API's no-op), against the engine with
its tracing calls removed, and with the SDK exporting every span over OTLP/HTTP to a local collector stub.

Run from the repository root::

    python bench/tracing_bench.py [--n 500] [--reps 5]

A tracer provider is installed once per process, so each measurement runs in its own Python process, the three
modes interleaved (a, b, c, a, b, c, ...); each process times ``engine.run`` of a chain of ``--n`` no-op steps on
a fresh SQLite file (the median of three, after a warm-up run), and the medians are compared:

- (a) "untraced": ``patterns.tracing``'s calls replaced by ones that do nothing (the engine before tracing);
- (b) "no-op API": as shipped, with no provider: a run span of the API's no-op, no step spans. Target: <= 1.05 x (a);
- (c) "SDK + OTLP": the ``otel`` extra's provider, a batch processor and the OTLP/HTTP exporter sending to a
  stub collector on 127.0.0.1 (it reads and discards): a span per run and per step, exported. Reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("untraced", "no-op API", "SDK + OTLP")
TARGET = 1.05
RUNS = 3  # timed runs per process (after a warm-up), their median its figure


RECEIVED = [0, 0]  # exports and their bytes, as the stub collector counts them


def collector() -> tuple[ThreadingHTTPServer, str]:
    """A stub OTLP/HTTP collector: reads each export and answers 200 with an empty response."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            RECEIVED[0] += 1
            RECEIVED[1] += len(body)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def untraced() -> None:
    """Replace the engine's tracing calls with ones that do nothing at all."""
    from opentelemetry.trace import INVALID_SPAN

    from patterns import tracing

    @contextmanager
    def running(span: Any, run_id: str, trace_id: str) -> Iterator[None]:
        yield

    def start_run(kind: str, links: Any = (), *, root: bool = False) -> Any:
        return INVALID_SPAN

    def resumed_run(kind: str, trace_id: str, span_id: str | None) -> Any:
        return INVALID_SPAN

    def ended(span: Any, status: str, error: Any = None) -> None:
        pass

    tracing.start_run = start_run
    tracing.resumed_run = resumed_run
    tracing.running = running
    tracing.ended = ended
    tracing.recording = lambda: False


async def measure(mode: str, n: int, endpoint: str) -> float:
    """One process's figure: µs per step of a chain of ``n`` no-op steps (after a warm-up run)."""
    stop = None
    if mode == "untraced":
        untraced()
    elif mode == "SDK + OTLP":
        from server.telemetry import start_tracing

        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint  # as `podium serve` would be started
        stop = start_tracing()
        assert stop is not None, "the otel extra is not installed"
    from bench.noop_tools import noop  # noqa: F401  (the tool's module must import)
    from patterns import Engine, Limits
    from registry import PythonProvider, Registry, ToolSpec
    from storage import Store

    step = {"chain": [{"tool": "noop"}] * n}
    with tempfile.TemporaryDirectory(prefix="podium-tracing-") as tmp:
        async with Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}") as store:
            registry = Registry(store)
            await registry.register(
                ToolSpec(
                    name="noop",
                    version="1.0.0",
                    provider=PythonProvider(target="bench.noop_tools:noop"),
                    idempotent=True,  # no durability barrier per step: what is left is the engine's own cost
                )
            )
            async with Engine(store, registry, Limits(max_steps=n + 10)) as engine:
                await engine.run(step, {})  # warm-up
                times = []
                for _ in range(RUNS):
                    started = time.perf_counter()
                    run = await engine.run(step, {})
                    times.append(time.perf_counter() - started)
                    assert run.status == "succeeded", run.error
    if stop is not None:
        stop()  # flushes: every span is exported before the process ends
    return statistics.median(times) / n * 1e6


def main(n: int, reps: int) -> None:
    server, endpoint = collector()
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for _ in range(reps):
            for mode in MODES:
                done = subprocess.run(
                    [sys.executable, __file__, "--one", mode, "--n", str(n), "--endpoint", endpoint],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    check=True,
                )
                samples[mode].append(json.loads(done.stdout.strip().splitlines()[-1])["us_per_step"])
    finally:
        server.shutdown()
    per = {mode: statistics.median(values) for mode, values in samples.items()}
    base = per["untraced"]
    print(f"Python {sys.version.split()[0]}; chain of {n} no-op steps, median of {reps} processes per mode\n")
    for mode in MODES:
        print(f"{mode:>12}: {per[mode]:8.1f} µs/step   {per[mode] / base:.2f}x untraced")
    print(f"\nthe stub collector received {RECEIVED[0]} exports, {RECEIVED[1] / 1e6:.1f} MB of spans")
    ratio = per["no-op API"] / base
    print(f"\nno-op API / untraced: {ratio:.2f}   target <= {TARGET}: {'PASS' if ratio <= TARGET else 'FAIL'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    if args.one is not None:
        print(json.dumps({"us_per_step": anyio.run(measure, args.one, args.n, args.endpoint or "")}))
    else:
        main(args.n, args.reps)
