"""Resilience policy of tool steps: retry, permanent errors, contracts, timeouts, spec defaults, fallback,
criticality, and sync tools running off the event loop."""

from pathlib import Path

import anyio
import pytest

from patterns.engine import Engine
from storage import StepRecord
from tests.conftest import calls, tool_spec

pytestmark = pytest.mark.anyio

FAST_RETRY = {"max_attempts": 3, "initial_s": 0.01, "jitter": 0}


async def records(engine: Engine, run_id: str) -> dict[str, StepRecord]:
    return {r.path: r for r in await engine.steps(run_id)}


async def test_a_flaky_tool_succeeds_on_its_third_attempt_with_every_attempt_recorded(engine, counter):
    step = {"tool": "flaky", "input": {"fail_times": 2, "counter": counter, "value": "x"}, "retry": FAST_RETRY}

    run = await engine.run(step)

    assert run.status == "succeeded"
    assert run.output == {"value": "x", "calls": 3}
    assert calls(counter) == 3
    record = (await records(engine, run.id))[""]
    assert record.status == "completed"
    assert [a["ok"] for a in record.attempts] == [False, False, True]
    assert [a["n"] for a in record.attempts] == [1, 2, 3]
    assert all(a["tool"] == "flaky@1.0.0" for a in record.attempts)
    for failed in record.attempts[:2]:
        assert failed["error"]["type"] == "tool_failed"
        assert "ConnectionError" in failed["error"]["message"]


async def test_exhausted_retries_fail_the_run_with_tool_failed_naming_the_step(engine, counter):
    step = {
        "chain": [
            {"tool": "double", "input": {"value": 1}},
            {"tool": "flaky", "input": {"fail_times": 10, "counter": counter}, "retry": FAST_RETRY},
        ]
    }

    run = await engine.run(step)

    assert run.status == "failed"
    assert run.error["type"] == "tool_failed"
    assert run.error["step"] == "1"
    assert "step 1" in run.error["message"]
    assert "flaky@1.0.0" in run.error["message"]
    assert "attempt 3 of 3" in run.error["message"]
    assert calls(counter) == 3
    record = (await records(engine, run.id))["1"]
    assert record.status == "failed"
    assert [a["ok"] for a in record.attempts] == [False, False, False]
    assert record.error is not None
    assert record.error["type"] == "tool_failed"


async def test_a_permanent_error_is_tried_once_even_when_the_policy_allows_five_attempts(engine, counter):
    retry = {"max_attempts": 5, "initial_s": 0.01, "jitter": 0}
    step = {"tool": "broken", "input": {"reason": "account closed", "counter": counter}, "retry": retry}

    run = await engine.run(step)

    assert run.status == "failed"
    assert run.error["type"] == "tool_failed"
    assert "account closed" in run.error["message"]
    assert "permanent" in run.error["message"]
    assert calls(counter) == 1
    record = (await records(engine, run.id))[""]
    assert len(record.attempts) == 1


async def test_an_output_contract_violation_is_not_retried_and_names_the_field_and_rule(engine):
    step = {"chain": [{"tool": "noop"}, {"tool": "wrong-output", "retry": FAST_RETRY}]}

    run = await engine.run(step, {})

    assert run.status == "failed"
    assert run.error["type"] == "contract_violation"
    assert run.error["step"] == "1"
    message = run.error["message"]
    assert "total" in message
    assert "rule: type" in message
    assert "wrong-output@1.0.0" in message
    record = (await records(engine, run.id))["1"]
    assert record.status == "failed"
    assert len(record.attempts) == 1
    assert record.attempts[0]["error"]["type"] == "contract_violation"


async def test_an_input_that_breaks_the_input_schema_is_a_contract_violation_before_the_tool_is_called(engine, counter):
    step = {"chain": [{"tool": "noop"}, {"tool": "add", "input": {"a": "one", "b": 2, "counter": counter}}]}

    run = await engine.run(step, {})

    assert run.status == "failed"
    assert run.error["type"] == "contract_violation"
    assert run.error["step"] == "1"
    assert "input" in run.error["message"]
    assert "field a" in run.error["message"]
    assert "rule: type" in run.error["message"]
    assert calls(counter) == 0


async def test_an_input_missing_a_required_field_names_the_rule_required(engine, counter):
    run = await engine.run({"tool": "add", "input": {"a": 1, "counter": counter}})

    assert run.status == "failed"
    assert run.error["type"] == "contract_violation"
    assert "required" in run.error["message"]
    assert "'b'" in run.error["message"]
    assert calls(counter) == 0


async def test_an_output_that_is_not_json_data_is_a_contract_violation(engine):
    run = await engine.run({"chain": [{"tool": "unjsonable", "retry": FAST_RETRY}]}, {})

    assert run.status == "failed"
    assert run.error["type"] == "contract_violation"
    assert run.error["step"] == "0"
    assert "not JSON" in run.error["message"]
    record = (await records(engine, run.id))["0"]
    assert len(record.attempts) == 1


async def test_an_attempt_that_exceeds_its_timeout_fails_with_type_timeout(engine, counter):
    step = {"chain": [{"tool": "sleepy", "input": {"seconds": 5, "counter": counter}, "timeout_s": 0.05}]}

    run = await engine.run(step)

    assert run.status == "failed"
    assert run.error["type"] == "timeout"
    assert run.error["step"] == "0"
    assert "timed out" in run.error["message"]
    assert calls(counter) == 1


async def test_timeouts_are_retried_when_the_policy_allows(engine, counter):
    retry = {"max_attempts": 2, "initial_s": 0.01, "jitter": 0}
    step = {"tool": "sleepy", "input": {"seconds": 5, "counter": counter}, "timeout_s": 0.05, "retry": retry}

    run = await engine.run(step)

    assert run.status == "failed"
    assert run.error["type"] == "timeout"
    assert calls(counter) == 2
    record = (await records(engine, run.id))[""]
    assert [a["error"]["type"] for a in record.attempts] == ["timeout", "timeout"]


async def test_a_step_that_times_out_once_succeeds_on_its_retry(engine, counter):
    retry = {"max_attempts": 2, "initial_s": 0.01, "jitter": 0}
    step = {"tool": "slow-once", "input": {"seconds": 5, "counter": counter}, "timeout_s": 0.1, "retry": retry}

    run = await engine.run(step)

    assert run.status == "succeeded"
    assert run.output == {"value": None, "calls": 2}
    record = (await records(engine, run.id))[""]
    assert [a["ok"] for a in record.attempts] == [False, True]
    assert record.attempts[0]["error"]["type"] == "timeout"


async def test_a_tool_specs_default_retry_applies_when_the_step_sets_none(engine, registry, counter):
    await registry.register(tool_spec("flaky", "2.0.0", retry=FAST_RETRY))

    run = await engine.run({"tool": "flaky@2.0.0", "input": {"fail_times": 2, "counter": counter}})

    assert run.status == "succeeded"
    assert calls(counter) == 3
    record = (await records(engine, run.id))[""]
    assert record.version == "2.0.0"
    assert [a["ok"] for a in record.attempts] == [False, False, True]


async def test_without_any_retry_policy_a_failing_tool_is_tried_once(engine, counter):
    run = await engine.run({"tool": "flaky", "input": {"fail_times": 2, "counter": counter}})

    assert run.status == "failed"
    assert run.error["type"] == "tool_failed"
    assert calls(counter) == 1


async def test_a_tool_specs_default_timeout_applies_when_the_step_sets_none(engine, registry, counter):
    await registry.register(tool_spec("sleepy", "2.0.0", timeout_s=0.05))

    run = await engine.run({"tool": "sleepy@2.0.0", "input": {"seconds": 5, "counter": counter}})

    assert run.status == "failed"
    assert run.error["type"] == "timeout"
    assert calls(counter) == 1


async def test_a_steps_own_timeout_overrides_the_tool_specs_default(engine, registry):
    await registry.register(tool_spec("sleepy", "2.0.0", timeout_s=0.05))

    run = await engine.run({"tool": "sleepy@2.0.0", "input": {"seconds": 0.1, "value": 7}, "timeout_s": 5})

    assert run.status == "succeeded"
    assert run.output == {"value": 7, "slept": 0.1}


async def test_a_fallback_is_used_after_the_primary_fails(engine, counter):
    step = {"chain": [{"tool": "broken", "input": {"reason": "down", "counter": counter}, "fallback": "echo"}]}

    run = await engine.run(step)

    assert run.status == "succeeded"
    assert run.output == {"reason": "down", "counter": counter}
    assert calls(counter) == 1
    record = (await records(engine, run.id))["0"]
    assert record.status == "completed"
    assert (record.tool, record.version) == ("echo", "1.0.0")
    assert [(a["tool"], a["ok"]) for a in record.attempts] == [("broken@1.0.0", False), ("echo@1.0.0", True)]


async def test_a_fallback_runs_after_the_primarys_retries_are_exhausted(engine, counter):
    step = {
        "tool": "flaky",
        "input": {"fail_times": 10, "counter": counter},
        "retry": {"max_attempts": 2, "initial_s": 0.01, "jitter": 0},
        "fallback": "echo",
    }

    run = await engine.run(step)

    assert run.status == "succeeded"
    assert calls(counter) == 2
    record = (await records(engine, run.id))[""]
    assert [a["tool"] for a in record.attempts] == ["flaky@1.0.0", "flaky@1.0.0", "echo@1.0.0"]


async def test_when_the_fallback_fails_too_the_error_mentions_both(engine):
    step = {"chain": [{"tool": "broken", "input": {"reason": "primary down"}, "fallback": "crash"}]}

    run = await engine.run(step)

    assert run.status == "failed"
    assert run.error["step"] == "0"
    message = run.error["message"]
    assert "broken@1.0.0" in message
    assert "primary down" in message
    assert "crash@1.0.0" in message
    assert "tool crashed" in message
    record = (await records(engine, run.id))["0"]
    assert record.status == "failed"
    assert [a["tool"] for a in record.attempts] == ["broken@1.0.0", "crash@1.0.0"]


async def test_a_non_critical_failure_in_a_chain_makes_the_run_partial_and_passes_on_what_flowed_in(engine, counter):
    step = {
        "chain": [
            {"tool": "broken", "input": {"counter": counter}, "critical": False},
            {"tool": "received"},
        ]
    }

    run = await engine.run(step, {"start": 1})

    assert run.status == "partial"
    assert run.missing == ["0"]
    assert run.error is None
    assert run.output == {"args": [], "kwargs": {"start": 1}}
    steps = await records(engine, run.id)
    assert steps["0"].status == "failed"
    assert steps["1"].status == "completed"
    assert steps["1"].input == {"start": 1}  # the chain's input, not the failed step's templated one


async def test_a_critical_failure_in_a_chain_stops_the_chain(engine, counter):
    step = {"chain": [{"tool": "broken"}, {"tool": "double", "input": {"value": 1, "counter": counter}}]}

    run = await engine.run(step)

    assert run.status == "failed"
    assert run.error["step"] == "0"
    assert calls(counter) == 0
    assert "1" not in await records(engine, run.id)


async def test_a_sync_tool_runs_off_the_event_loop_while_an_async_branch_completes(engine, tmp_path: Path):
    gate, done = str(tmp_path / "release"), str(tmp_path / "done")
    step = {
        "fan_out": {
            "branches": [
                {"tool": "blocking-wait", "input": {"release": gate, "done": done}},
                {"chain": [{"tool": "double", "input": {"value": 2}}, {"tool": "release", "input": {"path": gate}}]},
            ]
        }
    }

    run = await engine.run(step)

    # the sync branch only returns once the async branch has run; on the event loop it would block it forever
    assert run.status == "succeeded", run.error
    assert run.output == [{"released": True}, {"released": gate}]


async def test_a_blocking_sync_tool_returns_its_output(engine):
    run = await engine.run({"tool": "blocking-sleep", "input": {"seconds": 0.01}})

    assert run.status == "succeeded"
    assert run.output == {"slept": 0.01}


async def test_a_per_attempt_timeout_also_stops_waiting_for_a_blocking_sync_tool(engine, tmp_path: Path):
    gate, done = tmp_path / "release", tmp_path / "done"
    step = {"chain": [{"tool": "blocking-wait", "input": {"release": str(gate), "done": str(done)}, "timeout_s": 0.1}]}

    try:
        with anyio.fail_after(3):
            run = await engine.run(step)
        assert not done.exists()  # the run ended while the thread was still blocked
    finally:
        gate.write_text("go")
        with anyio.fail_after(5):
            while not done.exists():
                await anyio.sleep(0.01)

    assert run.status == "failed"
    assert run.error["type"] == "timeout"
    assert run.error["step"] == "0"
