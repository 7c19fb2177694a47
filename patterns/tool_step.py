"""A tool call: contracts, retry with backoff, per-attempt timeout, fallback, and its step record."""

from __future__ import annotations

import time
from typing import Any

import anyio

from patterns import contracts
from patterns.base import NodeRunner
from patterns.breakers import CircuitOpen
from patterns.errors import ERROR_TYPES, NeedsAttention, PatternError, StepFailed, describe_path
from patterns.steps import ToolStep
from registry.models import NO_RETRY, RetryPolicy, ToolSpec
from registry.providers import is_permanent
from storage import STEP_STARTED


def _failure(spec: ToolSpec, path: str, exc: Exception, attempt: int, policy: RetryPolicy) -> PatternError:
    if isinstance(exc, PatternError):
        return exc
    where = f"step {describe_path(path)}: {spec.ref}"
    tries = f" (attempt {attempt} of {policy.max_attempts})"
    if isinstance(exc, TimeoutError):
        return StepFailed(f"{where} timed out{tries}", step=path, type="timeout")
    kind = getattr(exc, "error_type", None)  # a downstream failure says what it is (registry.downstream)
    if kind in ERROR_TYPES:
        error = StepFailed(f"{where} failed{tries}: {exc}", step=path, type=kind)
        error.retry_after = getattr(exc, "retry_after", None)  # type: ignore[attr-defined]
    else:
        error = StepFailed(f"{where} failed{tries}: {type(exc).__name__}: {exc}", step=path)
    if is_permanent(exc):
        error.message += " (permanent: not retried)"
        error.args = (error.message,)
        error.permanent = True  # type: ignore[attr-defined]
    return error


async def _call(
    runner: NodeRunner, step: ToolStep, spec: ToolSpec, path: str, value: Any, attempts: list[dict[str, Any]]
) -> tuple[Any, str]:
    """Every attempt at one tool. Returns the output and its JSON, or raises the last failure."""
    state = runner.state
    contracts.check(state.validators[(spec.ref, "input")], spec, "input", value, path)
    policy = step.retry or spec.retry or NO_RETRY
    timeout = step.timeout_s or spec.timeout_s
    invoker = state.invokers[spec.ref]
    if not spec.idempotent:
        # durability barrier: the `started` record must be on disk before a side effect that must not repeat
        await state.store.flush(state.run_id)
        await state.confirm_lease()  # and this engine must still own the run: a stalled one may have lost it
    breakers = state.breakers
    for attempt in range(1, policy.max_attempts + 1):
        probe: int | None = None
        if breakers is not None:
            try:
                if breakers.check(spec, path):
                    probe = await breakers.probe(spec, path)
            except CircuitOpen as refused:  # not a call: nothing is charged or counted
                attempts.append({"n": len(attempts) + 1, "tool": spec.ref, "ok": False, "ms": 0.0, "cost": 0.0})
                attempts[-1]["error"] = refused.to_dict()
                state.update(path, attempts=tuple(attempts), cost=_cost(attempts))
                raise
        if state.top_up is not None and state.short_of(spec.cost):
            await state.top_up(path, spec.cost)
        state.charge(spec, path)
        started = time.perf_counter()
        limiter = state.limiter
        try:
            # take a token without yielding to the loop when one is free (the common case); wait otherwise
            try:
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                await limiter.acquire()
            try:
                if timeout is None:
                    output = await invoker(value)
                else:
                    with anyio.fail_after(timeout):
                        output = await invoker(value)
            finally:
                limiter.release()
            output_json = contracts.to_json(output, path, f"output of {spec.ref}", state.limits)
            state.last_output = (output, output_json)
            contracts.check(state.validators[(spec.ref, "output")], spec, "output", output, path)
            attempts.append(
                {"n": len(attempts) + 1, "tool": spec.ref, "ok": True, "ms": _ms(started), "cost": spec.cost}
            )
            if breakers is not None:
                breakers.record(spec, False, state.run_id, path)
                if probe is not None:
                    await breakers.settle_probe(spec, probe, True, state.run_id, path)
            return output, output_json
        except Exception as exc:  # a tool may raise anything; it becomes a typed step failure
            error = _failure(spec, path, exc, attempt, policy)
        if breakers is not None:  # only transient failures count against a breaker
            transient = error.retryable and not getattr(error, "permanent", False)
            breakers.record(spec, transient, state.run_id, path)
            if probe is not None:
                await breakers.settle_probe(spec, probe, not transient, state.run_id, path)
        attempts.append(
            {
                "n": len(attempts) + 1,
                "tool": spec.ref,
                "ok": False,
                "ms": _ms(started),
                "cost": spec.cost,
                "error": error.to_dict(),
            }
        )
        state.update(path, attempts=tuple(attempts), cost=_cost(attempts))
        if not error.retryable or getattr(error, "permanent", False) or attempt == policy.max_attempts:
            raise error
        delay = policy.delay_s(attempt)
        asked = getattr(error, "retry_after", None)  # the server's Retry-After, within the policy's cap
        if asked is not None:
            delay = min(policy.max_s, max(delay, asked))
        state.tell("retry", "warning", f"{error.message}; retrying in {delay:.3g}s", path)
        await anyio.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _cost(attempts: list[dict[str, Any]]) -> float:
    return float(sum(a["cost"] for a in attempts))


async def run_tool(runner: NodeRunner, step: ToolStep, path: str, value: Any) -> Any:
    state = runner.state
    spec = state.specs[step.tool]
    earlier = state.records.get(path)
    if earlier is not None and earlier.status == STEP_STARTED and not spec.idempotent:
        raise NeedsAttention(
            f"step {describe_path(path)}: {earlier.tool}@{earlier.version} is not idempotent and was interrupted "
            "while running, so it may or may not have taken effect; an operator must retry or skip it",
            step=path,
        )
    input_json = state.payload_json(value, path, "input")
    drain = state.drain
    if drain.draining:  # a graceful shutdown: start nothing new; another engine resumes the run here
        await drain.hold()
    if state.top_up is not None and state.short_of(None):
        await state.top_up(path, None)
    state.take_step(path)
    state.store_bytes(input_json, path, "input")
    state.begin(path, "tool", input_json, spec.name, spec.version)
    attempts: list[dict[str, Any]] = []
    drain.enter()
    try:
        output, output_json = await _call(runner, step, spec, path, value, attempts)
        used = spec
    except PatternError as primary:
        if step.fallback is None or not primary.absorbable:
            state.fail(path, primary, attempts=tuple(attempts), cost=_cost(attempts))
            raise
        used = state.specs[step.fallback]
        state.tell("fallback", "warning", f"{primary.message}; trying the fallback {used.ref}", path)
        try:
            output, output_json = await _call(runner, ToolStep(tool=step.fallback), used, path, value, attempts)
        except PatternError as second:
            error = second
            if second.absorbable:  # a limit stays the limit error it is; a failure tells both stories
                error = StepFailed(
                    f"{primary.message}; fallback {used.ref} failed too: {second.message}", step=path, type=second.type
                )
            state.fail(path, error, attempts=tuple(attempts), cost=_cost(attempts))
            raise error from None
    finally:
        drain.leave()
    state.store_bytes(output_json, path, "output")
    state.complete(
        path,
        output_json,
        tool=used.name,
        version=used.version,
        attempts=tuple(attempts),
        cost=_cost(attempts),
    )
    return output
