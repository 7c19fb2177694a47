"""Hostile input: each bomb is one call to a real ``podium serve``; does the server keep answering?

Run from the repository root::

    .venv/bin/python -m bench.hostile [--transport http|stdio] [--only NAME]

One ``podium serve`` subprocess (streamable HTTP on a free loopback port, or stdio) on a fresh SQLite file, with
``bench/hostile_tools.py`` (``echo``, ``blob``) in a registry file, and one ``mcp.Client`` session. The bombs are
the reproducers of the hostile-input issue, sent one after the other. While each is handled, a probe lists the
server's tools every 50 ms (over HTTP from a process of its own, so that nothing in this one delays it; over stdio
on the same stream, between whole lines), and the server's resident memory is read from ``/proc`` every 20 ms.
The probe needs no database, so what it measures is the server's own responsiveness: a blocked event loop shows
here (a read of the run store can also wait on SQLite while a large write commits; that is not counted). Between
bombs the benchmark waits until the server's memory has stopped falling. For each bomb the report gives:

- the time until the bomb's call was answered, and how (the error type the text starts with, or the run status);
- the longest probe round trip while it was handled: the longest the server stopped answering (a blocked event
  loop shows here), next to the median probe of a quiet server measured in the same run;
- the server's RSS before the bomb, the peak while it was handled, and 2 s after the answer.

Targets: every bomb answered within 2 s with a specific error or a bounded result; longest stall <= 100 ms; RSS
after within 50 MB of before. Two things in the figures are not the server's: the time to answer a request of
many megabytes includes this process encoding and sending it, and over stdio a probe written after such a request
waits for the request to cross the pipe first (one stream carries both). The last lines say which bombs missed a
target. The exit status is 0 either way: this is a report; the test suite checks the behaviour.

With ``--transport http`` the approval routes get their bombs too (a 50 MB body, bodies that are not objects, a
5,000-deep array).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
from mcp import Client

REPO_ROOT = Path(__file__).resolve().parent.parent
PODIUM = str(Path(sys.executable).with_name("podium"))
PROBE_EVERY_S = 0.05
RSS_EVERY_S = 0.02
SETTLE_S = 2.0
ANSWER_TARGET_S = 2.0
STALL_TARGET_MS = 100.0
RSS_TARGET_MB = 50.0
CALL_TIMEOUT_S = 120.0

REGISTRY = {
    "tool": [
        {"name": "echo", "version": "1.0.0", "idempotent": True,
         "provider": {"type": "python", "target": "bench.hostile_tools:echo"}},
        {"name": "blob", "version": "1.0.0", "idempotent": True,
         "provider": {"type": "python", "target": "bench.hostile_tools:blob"}},
    ]
}  # fmt: skip

ECHO = {"tool": "echo"}


def _nested_fan_out(width: int) -> dict[str, Any]:
    inner = {"fan_out": {"branches": [ECHO] * width}}
    middle = {"fan_out": {"branches": [inner] * width}}
    return {"branches": [middle] * width, "input": {"x": 1}}


def _route(on: str) -> dict[str, Any]:
    return {"on": on, "cases": {"a": ECHO}, "input": {"x": 1}}


def _chain(step: dict[str, Any]) -> dict[str, Any]:
    return {"steps": [step], "input": {"x": 1}}


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


MCP_BOMBS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "fan_out 100x100x100 echo (17 MB)": ("fan_out", partial(_nested_fan_out, 100)),
    "fan_out 22x22x22 echo (10,648 leaves)": ("fan_out", partial(_nested_fan_out, 22)),
    "fan_out of 10^6 branches": ("fan_out", lambda: {"branches": [ECHO] * 1_000_000}),
    "fan_out of 5,000 branches": ("fan_out", lambda: {"branches": [ECHO] * 5_000}),
    "fan_out of 200,000 branches (3.4 MB)": ("fan_out", lambda: {"branches": [ECHO] * 200_000}),
    "fan_out of 115,000 branches (2.0 MB)": ("fan_out", lambda: {"branches": [ECHO] * 115_000}),
    "run_chain with a 1 MB input": ("run_chain", lambda: {"steps": [ECHO], "input": {"v": ["abcdefgh"] * 90_000}}),
    "route on 'x' * 10 MB": ("route", lambda: _route("x" * 10_485_760)),
    "route on 'x' * 1 MB": ("route", lambda: _route("x" * 1_048_576)),
    "template: a 1 MB backtick literal": (
        "run_chain",
        lambda: _chain({"tool": "echo", "input": {"v": {"$": "`" + "1" * 1_000_000 + "`"}}}),
    ),
    "route on input | [@,@] x22": ("route", lambda: _route("input" + " | [@,@]" * 22)),
    "refine score doubled x20": (
        "refine",
        lambda: {"generate": ECHO, "evaluate": ECHO, "score": "x" + " | [@,@]" * 20, "threshold": 1, "input": {"x": 1}},
    ),
    "fan_out of 1,000 outputs of ~1 MiB": (
        "fan_out",
        lambda: {"branches": [{"tool": "blob", "input": {"size": 1_040_000}}] * 1_000},
    ),
    "route on ( x500 input ) x500": ("route", lambda: _route("(" * 500 + "input" + ")" * 500)),
    "route on [ x1000": ("route", lambda: _route("[" * 1000)),
    "route on ! x1000 input": ("route", lambda: _route("!" * 1000 + "input")),
    "route on input | @ x1000": ("route", lambda: _route("input" + " | @" * 1000)),
    "route on unknown_fn(input)": ("route", lambda: _route("unknown_fn(input)")),
    "route on sort_by(input, &a) over an object": ("route", lambda: _route("sort_by(input, &a)")),
    "template nesting [ x300 input ] x300": (
        "run_chain",
        lambda: _chain({"tool": "echo", "input": {"v": {"$": "[" * 300 + "input" + "]" * 300}}}),
    ),
    "input nested 150 deep": ("run_chain", lambda: {"steps": [ECHO], "input": {"v": _nest(150)}}),
    "payload_schema nested 180 deep": (
        "await_approval",
        lambda: {"title": "t", "brief": "b", "payload_schema": _nest_schema(180), "options": {"wait_s": 0}},
    ),
    "options.tags of 1.5 MB": ("run_chain", lambda: {**_chain(ECHO), "options": {"tags": {"k": "v" * 1_500_000}}}),
    "await_approval brief of 1.5 MB": ("await_approval", lambda: {"title": "t", "brief": "b" * 1_500_000}),
    "tool name of 1.5 MB": ("run_chain", lambda: _chain({"tool": "t" * 1_500_000})),
    "route case key of 1.5 MB": ("route", lambda: {"on": "input.x", "cases": {"k" * 1_500_000: ECHO}}),
    "options.wait_s -1": ("run_chain", lambda: {**_chain(ECHO), "options": {"wait_s": -1}}),
    "idempotency_key of 300 characters": (
        "run_chain",
        lambda: {**_chain(ECHO), "options": {"idempotency_key": "k" * 300}},
    ),
}


def _nest_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth // 2):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


HTTP_BOMBS: dict[str, tuple[str, bytes]] = {
    "POST /gates/x with a 50 MB body": ("application/json", b'{"comment": "' + b"c" * 50_000_000 + b'"}'),
    "POST /gates/x with [1,2]": ("application/json", b"[1,2]"),
    "POST /gates/x with null": ("application/json", b"null"),
    "POST /gates/x with a 5,000-deep array": ("application/json", b"[" * 5_000 + b"]" * 5_000),
    "POST /gates/x with comment {x: 1}": ("application/json", b'{"decision": "approve", "comment": {"x": 1}}'),
}


# -- the server and the probe ---------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {"PYTHONPATH": str(REPO_ROOT), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_args(tmp: Path) -> list[str]:
    registry = tmp / "tools.json"
    registry.write_text(json.dumps(REGISTRY), encoding="utf-8")
    return ["serve", "--db", str(tmp / "hostile.db"), "--registry", str(registry)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Probe:
    """Round trips of ``tools/list`` requests: (when sent, how long it took), appended as they complete."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def add(self, sent: float, seconds: float) -> None:
        self.samples.append((sent, seconds))
        self.arrived.set()
        self.arrived = anyio.Event()

    async def longest_between(self, start: float, end: float) -> float:
        """The longest round trip of a probe sent from ``start`` to ``end``, waiting for one sent after ``end``
        to come back first (a stall that outlasts the bomb's answer counts too)."""
        with anyio.move_on_after(CALL_TIMEOUT_S):
            while not any(sent > end for sent, _ in self.samples):
                await self.arrived.wait()
        window = [seconds for sent, seconds in self.samples if start - PROBE_EVERY_S <= sent <= end]
        later = [seconds for sent, seconds in self.samples if sent > end][:1]
        return max(window + later, default=0.0)


class Target:
    """One way to reach the server: ``call`` sends a bomb, ``probe`` keeps the probe going meanwhile."""

    pid: int
    base: str | None = None

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        raise NotImplementedError

    async def probe(self, probe: Probe) -> None:
        raise NotImplementedError


class HttpTarget(Target):
    """``podium serve --http``: bombs from an ``mcp.Client`` here, probes from another process, so that
    neither the client's own encoding of a bomb nor anything else in this process delays a probe."""

    def __init__(self, client: Client, pid: int, base: str) -> None:
        self.client, self.pid, self.base = client, pid, base

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        return describe_result(await self.client.call_tool(tool, arguments))

    async def probe(self, probe: Probe) -> None:
        assert self.base is not None
        args = [sys.executable, "-m", "bench.hostile", "--probe", f"{self.base}/mcp"]
        async with await anyio.open_process(args, env=_env(), cwd=REPO_ROOT) as process:
            assert process.stdout is not None
            buffer = b""
            async for chunk in process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    sent, seconds = line.split()
                    probe.add(float(sent), float(seconds))


class StdioTarget(Target):
    """``podium serve`` over stdio, spoken to as raw JSON-RPC lines (protocol 2025-11-25): bombs are encoded before
    they are timed, and probes share the one stream, each written between whole lines."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.pid = process.pid
        self.next_id = 0
        self.waiting: dict[int, tuple[anyio.Event, list[dict[str, Any]]]] = {}
        self.write_lock = anyio.Lock()

    async def read(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = (
                    json.loads(line) if len(line) < 1_000_000 else await anyio.to_thread.run_sync(json.loads, line)
                )
                found = self.waiting.pop(message.get("id", -1), None)
                if found is not None:
                    found[1].append(message)
                    found[0].set()

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        request_id = self.next_id
        line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode() + b"\n"
        done, box = anyio.Event(), list[dict[str, Any]]()
        self.waiting[request_id] = (done, box)
        assert self.process.stdin is not None
        async with self.write_lock:
            await self.process.stdin.send(line)
        await done.wait()
        return box[0]

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        reply = await self.request("tools/call", {"name": tool, "arguments": arguments})
        if "error" in reply:
            return f"JSON-RPC error {reply['error'].get('code')}: {str(reply['error'].get('message'))[:80]}"
        result = reply["result"]
        return describe(bool(result.get("isError")), _text(result.get("content")), result.get("structuredContent"))

    async def probe(self, probe: Probe) -> None:
        while True:
            sent = time.time()
            start = time.perf_counter()
            await self.request("tools/list", {})
            probe.add(sent, time.perf_counter() - start)
            await anyio.sleep(PROBE_EVERY_S)


def _text(content: Any) -> str:
    return str(content[0].get("text", "")) if content else ""


@asynccontextmanager
async def target(transport: str) -> AsyncIterator[Target]:
    with tempfile.TemporaryDirectory(prefix="podium-hostile-") as tmp_name:
        args = [PODIUM, *_serve_args(Path(tmp_name))]
        if transport == "stdio":
            async with await anyio.open_process(args, env=_env(), cwd=REPO_ROOT, stderr=subprocess.DEVNULL) as process:
                stdio = StdioTarget(process)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(stdio.read)
                    await stdio.request("initialize", {
                        "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": {"name": "podium-hostile-bench", "version": "1"}})  # fmt: skip
                    assert process.stdin is not None
                    await process.stdin.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
                    yield stdio
                    tg.cancel_scope.cancel()
                process.terminate()
            return
        port = _free_port()
        process = await anyio.open_process(
            [*args, "--http", "--port", str(port)], env=_env(), cwd=REPO_ROOT, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        try:
            with anyio.fail_after(30):
                while True:
                    try:
                        await anyio.connect_tcp("127.0.0.1", port)
                        break
                    except OSError:
                        await anyio.sleep(0.1)
            async with Client(f"{base}/mcp", read_timeout_seconds=CALL_TIMEOUT_S) as client:
                yield HttpTarget(client, process.pid, base)
        finally:
            process.terminate()
            await process.wait()


async def run_probe(url: str) -> None:
    """The probe process: list the tools every 50 ms (uncached), print ``SENT SECONDS`` per round trip."""
    async with Client(url, read_timeout_seconds=CALL_TIMEOUT_S, cache=None) as client:
        while True:
            sent = time.time()
            start = time.perf_counter()
            await client.list_tools()
            print(f"{sent:.6f} {time.perf_counter() - start:.6f}", flush=True)
            await anyio.sleep(PROBE_EVERY_S)


# -- measuring -----------------------------------------------------------------------------------------------


@dataclass
class Row:
    bomb: str
    answer_s: float = 0.0
    outcome: str = ""
    stall_ms: float = 0.0
    rss_before: float = 0.0
    rss_peak: float = 0.0
    rss_after: float = 0.0

    def misses(self) -> list[str]:
        missed = []
        if self.answer_s > ANSWER_TARGET_S:
            missed.append(f"answered in {self.answer_s:.1f} s")
        if self.stall_ms > STALL_TARGET_MS:
            missed.append(f"stalled {self.stall_ms:.0f} ms")
        if self.rss_after - self.rss_before > RSS_TARGET_MB:
            missed.append(f"kept {self.rss_after - self.rss_before:.0f} MB")
        if self.outcome.startswith(("internal", "no answer")):
            missed.append(self.outcome)
        return missed


def describe(is_error: bool, text: str, run: dict[str, Any] | None) -> str:
    if is_error:
        return " ".join(text.split())[:90]
    run = run or {}
    error = run.get("error") or {}
    return f"run {run.get('status')}" + (f" ({error.get('type')}: {str(error.get('message'))[:60]})" if error else "")


def describe_result(result: Any) -> str:
    text = result.content[0].text if result.content else ""
    return describe(bool(result.is_error), text, result.structured_content)


async def settle(pid: int) -> float:
    """Wait (up to 10 s) until the server's RSS stops falling: the previous bomb's work is over. Returns it."""
    last = rss_mb(pid)
    for _ in range(20):
        await anyio.sleep(0.5)
        now = rss_mb(pid)
        if now >= last - 1:
            return now
        last = now
    return last


async def measure(server: Target, probe: Probe, name: str, call: Callable[[], Awaitable[str]]) -> Row:
    row = Row(name)
    row.rss_before = row.rss_peak = await settle(server.pid)
    done = anyio.Event()

    async def memory() -> None:
        while not done.is_set():
            row.rss_peak = max(row.rss_peak, rss_mb(server.pid))
            with anyio.move_on_after(RSS_EVERY_S):
                await done.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(memory)
        start_wall, start = time.time(), time.perf_counter()
        try:
            with anyio.fail_after(CALL_TIMEOUT_S):
                row.outcome = await call()
        except TimeoutError:
            row.outcome = f"no answer within {CALL_TIMEOUT_S:g} s"
        except Exception as exc:  # a transport-level refusal (HTTP 413) or a protocol error
            row.outcome = f"{type(exc).__name__}: {' '.join(str(exc).split())[:80]}"
        row.answer_s = time.perf_counter() - start
        done.set()
    row.stall_ms = await probe.longest_between(start_wall, start_wall + row.answer_s) * 1000
    await anyio.sleep(SETTLE_S)
    row.rss_after = rss_mb(server.pid)
    row.rss_peak = max(row.rss_peak, row.rss_after)
    return row


async def main(transport: str, only: str | None) -> None:
    print(f"Podium hostile-input benchmark: podium serve over {transport}")
    rows: list[Row] = []
    probe = Probe()
    async with target(transport) as server, anyio.create_task_group() as tg:
        print(f"warm-up: {await server.call('run_chain', _chain(ECHO))}")
        tg.start_soon(server.probe, probe)
        with anyio.fail_after(30):
            while len(probe.samples) < 20:
                await probe.arrived.wait()
        quiet_ms = statistics.median(seconds for _, seconds in probe.samples) * 1000
        print(f"quiet server: list_runs median {quiet_ms:.1f} ms; RSS {rss_mb(server.pid):.0f} MB\n")
        for name, (tool, make) in MCP_BOMBS.items():
            if only and only not in name:
                continue
            arguments = make()
            rows.append(await measure(server, probe, name, partial(server.call, tool, arguments)))
            print(_line(rows[-1]), flush=True)
        if server.base is not None:
            for name, (content_type, body) in HTTP_BOMBS.items():
                if only and only not in name:
                    continue
                post = partial(_post, f"{server.base}/gates/x", content_type, body)
                rows.append(await measure(server, probe, name, post))
                print(_line(rows[-1]), flush=True)
        tg.cancel_scope.cancel()
    missed = [(row.bomb, row.misses()) for row in rows if row.misses()]
    print(f"\ntargets: answered <= {ANSWER_TARGET_S:g} s, stall <= {STALL_TARGET_MS:g} ms, RSS after <= before + "
          f"{RSS_TARGET_MB:g} MB, never internal")  # fmt: skip
    if not missed:
        print(f"all {len(rows)} bombs met every target")
    for bomb, what in missed:
        print(f"MISSED {bomb}: {', '.join(what)}")


async def _post(url: str, content_type: str, body: bytes) -> str:
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT_S) as http:
        response = await http.post(url, content=body, headers={"content-type": content_type})
    return f"HTTP {response.status_code}: {response.text[:60]}"


def _line(row: Row) -> str:
    return (
        f"{row.bomb:<44} {row.answer_s * 1000:8.0f} ms  stall {row.stall_ms:6.0f} ms  RSS {row.rss_before:5.0f} / "
        f"{row.rss_peak:5.0f} / {row.rss_after:5.0f} MB  {row.outcome}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    parser.add_argument("--only", help="run only the bombs whose name holds this text")
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)  # the probe process
    args = parser.parse_args()
    if args.probe:
        anyio.run(run_probe, args.probe)
    else:
        anyio.run(main, args.transport, args.only)
