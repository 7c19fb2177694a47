"""What a 10-step chain costs through the MCP server, next to the cheapest call the server answers.

Run from the repository root::

    python bench/mcp_bench.py [--reps 30] [--mode auto|legacy] [--quick]

One ``podium serve`` subprocess over stdio, on a fresh SQLite file and a registry file holding only
``noop@1.0.0`` (``bench.noop_tools:noop``, idempotent), and one ``mcp.Client`` connected to it for the whole
run. After a warm-up, two calls are measured interleaved (a, b, a, b, ...), ``--reps`` times each, and the
report gives their medians and p90s in milliseconds, client-side wall time around ``call_tool``:

- (a) ``describe_tool`` with ``{"ref": "noop"}``: one round trip and a registry lookup, the floor;
- (b) ``run_chain`` with 10 ``{"tool": "noop"}`` steps and ``input: {}``: one round trip carrying a durable
  10-step run, started and settled inside the call.

Target: median (b) / median (a) <= 3. Starting the server and connecting are outside the timings. This is a
report, not a test: the exit code is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

REPO_ROOT = Path(__file__).resolve().parent.parent
PODIUM = str(Path(sys.executable).with_name("podium"))

CHAIN_STEPS = 10
WARMUP_ROUNDS = 5
QUICK_REPS = 5
RATIO_TARGET = 3.0  # median run_chain / median describe_tool
READ_TIMEOUT_S = 60.0  # per request; a hung server fails the run instead of stalling it

REGISTRY: dict[str, Any] = {
    "tool": [
        {
            "name": "noop",
            "version": "1.0.0",
            "provider": {"type": "python", "target": "bench.noop_tools:noop"},
            "idempotent": True,
        }
    ]
}

DESCRIBE_ARGS: dict[str, Any] = {"ref": "noop"}
CHAIN_ARGS: dict[str, Any] = {"steps": [{"tool": "noop"}] * CHAIN_STEPS, "input": {}}


# -- the server ----------------------------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    """The bench tools live in bench/, importable from the repository root."""
    return {"PYTHONPATH": str(REPO_ROOT), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


def server_params(tmp: Path) -> StdioServerParameters:
    registry_file = tmp / "tools.json"
    registry_file.write_text(json.dumps(REGISTRY), encoding="utf-8")
    args = ["serve", "--db", str(tmp / "bench.db"), "--registry", str(registry_file)]
    return StdioServerParameters(command=PODIUM, args=args, env=server_env(), cwd=REPO_ROOT)


# -- the calls -----------------------------------------------------------------------------------------------


async def describe_tool(client: Client) -> float:
    start = time.perf_counter()
    result = await client.call_tool("describe_tool", DESCRIBE_ARGS)
    seconds = time.perf_counter() - start
    info = result.structured_content
    if result.is_error or info is None or info.get("name") != "noop":
        raise RuntimeError(f"describe_tool failed: {result.content}")
    return seconds


async def run_chain(client: Client) -> float:
    start = time.perf_counter()
    result = await client.call_tool("run_chain", CHAIN_ARGS)
    seconds = time.perf_counter() - start
    run = result.structured_content
    if result.is_error or run is None or run.get("status") != "succeeded":
        status = None if run is None else run.get("status")
        raise RuntimeError(f"run_chain ended {status}: {result.content}")
    steps = run.get("usage", {}).get("steps")
    if steps is not None and steps != CHAIN_STEPS:
        raise RuntimeError(f"run_chain used {steps} steps, expected {CHAIN_STEPS}")
    return seconds


# -- measuring and reporting ---------------------------------------------------------------------------------


@dataclass
class Row:
    call: str
    samples: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p90_ms(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0] * 1000
        return statistics.quantiles(self.samples, n=10, method="inclusive")[-1] * 1000


async def measure(client: Client, reps: int) -> tuple[Row, Row]:
    """``WARMUP_ROUNDS`` untimed rounds, then ``reps`` rounds of (a) then (b)."""
    await client.list_tools()
    for _ in range(WARMUP_ROUNDS):
        await describe_tool(client)
        await run_chain(client)
    describe = Row('(a) describe_tool {"ref": "noop"}', [])
    chain = Row(f"(b) run_chain, {CHAIN_STEPS} noop steps", [])
    for _ in range(reps):
        gc.collect()
        describe.samples.append(await describe_tool(client))
        gc.collect()
        chain.samples.append(await run_chain(client))
    return describe, chain


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(rows: Sequence[Row]) -> None:
    header = f"{'call':<36} {'median ms':>10} {'p90 ms':>8}  samples (ms)"
    print(header)
    print("-" * len(header))
    for row in rows:
        samples = " ".join(f"{s * 1000:.2f}" for s in row.samples)
        print(f"{row.call:<36} {row.median_ms:10.2f} {row.p90_ms:8.2f}  {samples}")


async def main(reps: int, mode: str) -> None:
    print(f"Podium MCP benchmark: stdio, mode={mode}, reps={reps} (medians of interleaved repetitions)")
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, anyio {version('anyio')}, "
        f"mcp {version('mcp')}; one `podium serve` subprocess, one client"
    )
    with tempfile.TemporaryDirectory(prefix="podium-mcp-bench-") as tmp:
        params = server_params(Path(tmp))
        async with Client(params, mode=mode, read_timeout_seconds=READ_TIMEOUT_S) as client:
            print(f"negotiated protocol {client.protocol_version}")
            print(f"warm-up: list_tools, then {WARMUP_ROUNDS} untimed rounds of each call\n")
            describe, chain = await measure(client, reps)
    print_table([describe, chain])
    ratio = chain.median_ms / describe.median_ms
    print()
    print(
        f"run_chain / describe_tool (medians): {ratio:.2f}x  "
        f"({chain.median_ms:.2f} vs {describe.median_ms:.2f} ms; "
        f"{(chain.median_ms - describe.median_ms) / CHAIN_STEPS * 1000:.0f} µs/step over the floor)   "
        f"target <= {RATIO_TARGET:g}x: {verdict(ratio <= RATIO_TARGET)}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=30, help="interleaved repetitions of each call")
    parser.add_argument("--mode", choices=["auto", "legacy"], default="auto", help="mcp.Client connect mode")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: reps={QUICK_REPS}")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    anyio.run(partial(main, QUICK_REPS if args.quick else args.reps, args.mode))
