"""What calling a downstream MCP tool through Podium costs, against a bare ``mcp`` client calling the same tool.

Run from the repository root::

    python bench/downstream_bench.py [--steps 200] [--reps 5] [--mode auto|legacy]

The downstream server is ``bench/bare_server.py`` (one async tool, ``ping``) over stdio. Interleaved, ``--reps``
times each, after one untimed round of both:

- bare: one ``mcp.Client`` session (opened before timing) calls ``ping`` ``--steps`` times in a row;
- podium: ``engine.run`` of a chain of ``--steps`` ``{"tool": "bare.ping"}`` steps on a fresh SQLite file, the
  server imported with ``podium tools import-mcp``'s code and its session opened by an untimed warm-up run.

Per step is the median total over ``--steps``. Target: podium <= 1.5 x bare (the session is pooled: no handshake
per call, and the engine's own work per step, records included, is small beside a stdio round trip). ``ping`` is
imported idempotent (its ``idempotentHint``); a tool that is not pays a durability barrier and a lease check before
each call, by design. This is a
report, not a test: the exit code is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patterns import Engine, Limits
from registry import Registry
from registry.mcp_import import import_server
from registry.servers import ServerSpec
from storage import Store

BARE = Path(__file__).with_name("bare_server.py")


async def bare_calls(client: Client, steps: int) -> float:
    gc.collect()
    started = time.perf_counter()
    for _ in range(steps):
        result = await client.call_tool("ping", {})
        assert not result.is_error
    return time.perf_counter() - started


async def podium_chain(engine: Engine, steps: int) -> float:
    gc.collect()
    started = time.perf_counter()
    run = await engine.run({"chain": [{"tool": "bare.ping"}] * steps}, {}, None)
    elapsed = time.perf_counter() - started
    if run.status != "succeeded":
        raise RuntimeError(f"the benchmark chain ended {run.status}: {run.error}")
    return elapsed


async def main(steps: int, reps: int, mode: str) -> None:
    server = ServerSpec(name="bare", command=(sys.executable, str(BARE)), mode=mode)
    params = StdioServerParameters(command=sys.executable, args=[str(BARE)])
    with tempfile.TemporaryDirectory() as tmp:
        async with Store.open(f"sqlite:///{tmp}/bench.db") as store:
            registry = Registry(store)
            await import_server(registry, server)
            limits = Limits(max_steps=100_000)
            async with Engine(store, registry, limits) as engine, Client(params, mode=mode) as client:
                await bare_calls(client, steps)  # warm-up: both sessions open, both code paths hot
                await podium_chain(engine, steps)
                bare: list[float] = []
                podium: list[float] = []
                for _ in range(reps):
                    bare.append(await bare_calls(client, steps))
                    podium.append(await podium_chain(engine, steps))
    per_bare = statistics.median(bare) / steps * 1e6
    per_podium = statistics.median(podium) / steps * 1e6
    ratio = per_podium / per_bare
    print(f"Python {sys.version.split()[0]}, downstream bench/bare_server.py over stdio, mode {mode}")
    print(f"{steps} calls of ping, median of {reps} interleaved repetitions\n")
    print(
        f"bare mcp.Client, one session:       {per_bare:8.0f} µs/call   samples (ms): "
        + " ".join(f"{s * 1000:.1f}" for s in bare)
    )
    print(
        f"podium chain, pooled session:       {per_podium:8.0f} µs/step   samples (ms): "
        + " ".join(f"{s * 1000:.1f}" for s in podium)
    )
    print(f"\npodium / bare: {ratio:.2f}   target <= 1.5: {'PASS' if ratio <= 1.5 else 'FAIL'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, args.steps, args.reps, args.mode)
