"""What a model reads: the server's instructions, each tool's description, and the ``supervise`` prompt."""

from __future__ import annotations

import json
from typing import Any

STEP_LANGUAGE = """\
Step language (JSON). A step is one of:
  {"tool": "name@^1.2", "input"?: template, "id"?: "name", "retry"?: {"max_attempts": 3}, "timeout_s"?: 30,
   "fallback"?: "other-tool@1", "critical"?: true}
  {"chain": [step, ...]}     {"fan_out": {"branches": [step, ...], "strategy": "all", "reduce"?: step}}
  {"map_reduce": {"map": step, "reduce"?: step, "chunk_size"?: 1}}
  {"route": {"on": "input.kind", "cases": {"a": step}, "default"?: step}}
  {"refine": {"generate": step, "evaluate": step, "score": "score", "threshold": 0.8}}
  {"gate": {"title": "...", "brief": "...", "approvers": ["legal"], "sla_s": 14400, "escalate_to": ["gc"]}}
  {"workflow": "name@^1", "budget"?: {"max_steps": 20}}  (a published workflow as a child run)
Without "input" a step gets what flows in (a chain step: the previous output). A template's {"$": "<JMESPath>"}
values are read from {input, prev, steps, item, results, feedback, missing, run}; e.g. {"amount": {"$":
"steps.inv.total"}}. critical: false turns a failure into a named gap (status partial, path listed in `missing`);
in a chain the next step then gets what flowed into the failed one."""

INSTRUCTIONS = f"""\
Podium runs multi-step tool work for you reliably: ordering, parallelism, retries, timeouts, fallbacks, quorum,
hard limits and durable state. Find tools with find_tools / describe_tool, check a plan with validate, start it
with run_chain, fan_out, map_reduce, route or refine, and follow it with wait_run / get_run. Every result says
what to do next in `next_action`. Runs keep going after a call returns.

{STEP_LANGUAGE}"""

_RESULT = "Returns a RunResult (schema: get_run's); still `running` after options.wait_s? Call wait_run."

# One example per tool, as arguments: each runs as written against the demo's tools (server/demo/tools.toml);
# <run_id> and <gate_id> stand for ids a RunResult gives. tests/server/test_tool_examples.py calls every one.
EXAMPLES: dict[str, dict[str, Any]] = {
    "run_chain": {
        "steps": [
            {"tool": "extract-invoice@^1", "id": "inv"},
            {"tool": "check-budget@^1", "input": {"invoice": {"$": "steps.inv"}}},
        ],
        "input": {"text": "INVOICE INV-1042\nFrom: ACME Corp\nTotal: 1,250.00 EUR"},
    },
    "fan_out": {
        "branches": [{"tool": "vendor-financials"}, {"tool": "vendor-news"}],
        "strategy": "best_effort",
        "branch_timeout_s": 5,
        "reduce": {"tool": "synthesize-risk", "input": {"vendor": {"$": "input.vendor"}, "results": {"$": "results"}}},
        "input": {"vendor": "ACME Corp"},
    },
    "map_reduce": {
        "items": ["INVOICE INV-1\nFrom: ACME Corp\nTotal: 120.00 EUR", "INVOICE INV-2\nFrom: Globex\nTotal: 80.00 EUR"],
        "map": {"tool": "extract-invoice", "input": {"text": {"$": "item"}}},
    },
    "route": {
        "input": {"subject": "Charged twice", "body": "My card was billed twice.", "category": "billing"},
        "on": "input.category",
        "cases": {"billing": {"tool": "handle-billing"}, "outage": {"tool": "handle-outage"}},
        "default": {"tool": "handle-general"},
    },
    "refine": {
        "input": {"subject": "Invoice shows the wrong amount", "body": "The total on INV-7 is 10 EUR too high."},
        "generate": {
            "tool": "draft-reply",
            "input": {
                "subject": {"$": "input.subject"},
                "body": {"$": "input.body"},
                "missing": {"$": "feedback.missing"},
            },
        },
        "evaluate": {"tool": "grade-reply"},
        "score": "score",
        "threshold": 1,
    },
    "await_approval": {
        "title": "Renew ACME at +4%",
        "brief": "Current terms EUR 120k/year; market +3-4%; recommend +4% for two years.",
        "payload": {"vendor": "ACME Corp", "increase_pct": 4},
        "approvers": ["legal"],
        "sla_s": 14400,
        "escalate_to": ["general-counsel"],
    },
    "decide_gate": {"gate_id": "<gate_id>", "decision": "approve", "comment": "terms match the benchmark"},
    "run_workflow": {
        "workflow": "invoice-intake@^1",
        "input": {"text": "INVOICE INV-1042\nFrom: ACME Corp\nTotal: 1,250.00 EUR"},
    },
    "validate": {
        "step": {
            "chain": [
                {"tool": "extract-invoice@^1", "id": "inv"},
                {"tool": "match-po@^1", "input": {"invoice": {"$": "steps.inv"}}},
            ]
        }
    },
    "get_run": {"run_id": "<run_id>"},
    "wait_run": {"run_id": "<run_id>", "timeout_s": 30},
    "list_runs": {"status": "failed", "limit": 10},
    "cancel_run": {"run_id": "<run_id>", "reason": "the user changed their mind"},
    "find_tools": {"query": "invoice"},
    "describe_tool": {"ref": "extract-invoice@^1"},
    "emit_event": {"type": "contract.renewal_due", "key": "C-1001/2026-12", "payload": {"contract_id": "C-1001"}},
}


def _example(tool: str) -> str:
    return "Example: " + json.dumps(EXAMPLES[tool], separators=(", ", ": "), ensure_ascii=False)


TOOL_DOCS: dict[str, str] = {
    "run_chain": f"""Run steps in order, each getting the previous step's output (a sequential chain): extract ->
validate -> post. A run-starting call with no input gets {{}}. {_example("run_chain")}
{_RESULT}

{STEP_LANGUAGE}""",
    "fan_out": f"""Run independent branches in parallel on the same input, then optionally reduce the results.
strategy: "all" (any failure fails), "best_effort" (failures become gaps named in `missing`, null in the
output), "quorum" (done once `quorum` branches succeed). branch_timeout_s makes a slow branch a gap. reduce
gets the results list (`results`). {_example("fan_out")}
{_RESULT}""",
    "map_reduce": f"""Run one step per item of a list in parallel (map), then optionally combine them (reduce).
map gets the item (`item`; a list of chunk_size items when chunk_size > 1); reduce gets the results in item
order. strategy, quorum and item_timeout_s work as in fan_out. {_example("map_reduce")}
{_RESULT}""",
    "route": f"""Choose one step by a value of the input (conditional routing). `on` is JMESPath over {{input}};
its value (strings as-is, others as JSON text such as true or 3) picks the case; `default` runs when none matches.
{_example("route")}
{_RESULT}""",
    "refine": f"""Improve a result in a loop: generate, evaluate, score; stop at the threshold or a hard limit.
generate gets the input, then its last output (`feedback`: the last evaluation); evaluate gets the generated
output; `score` is JMESPath into the evaluation. Also stops at max_iterations, min_improvement, time_budget_s or
cost_budget. Output: {{output, score, iteration, reached_threshold, stop_reason, ...}}. {_example("refine")}
{_RESULT}""",
    "await_approval": f"""Ask a human to approve, modify or reject something before you go on (a gate).
Give a brief the approver can decide on in minutes: what, why, the recommendation, its risks. The run waits
(`waiting`; `gate` shows who is asked and the deadline). After sla_s (default 24 h) it escalates to the next
name in escalate_to, after the last on_timeout applies. An approved gate outputs {{gate_id, decision, payload,
decided_by, comment}}. {_example("await_approval")}
{_RESULT}""",
    "decide_gate": f"""Decide an open gate: approve, modify (payload is the edited version) or reject, with a comment.
Only for principals with the approver role, never the one that opened the gate (a model never approves its own
request). Returns the RunResult. {_example("decide_gate")}""",
    "run_workflow": f"""Start a published workflow (find_tools lists them, kind "workflow"): name, name@1.2.3 or
name@^1; input must fit its input_schema. {_example("run_workflow")}
{_RESULT}""",
    "validate": f"""Check a step tree (`step`) or a workflow (`workflow`: name@spec) without running it: it parses,
tool references resolve, templates name existing steps, static limits hold, and each
chain producer's output (a workflow's input) can satisfy the next tool's required input. Returns {{valid, lock,
problems}}. {_example("validate")}""",
    "get_run": f"""A run's state (status, output, error, gaps, steps, usage, next_action): a RunResult.
step_limit (default 20) caps the steps listed; podium://runs/{{run_id}}/steps has them all.
{_example("get_run")}""",
    "wait_run": f"""Wait for a run to settle, up to timeout_s (at most 50; default: the server's default_wait_s,
20 s), then return its RunResult. Call it again while the status is `running`.
{_example("wait_run")}""",
    "list_runs": f"""Recent runs, newest first, optionally by status ("failed", "partial", "running").
{_example("list_runs")}""",
    "cancel_run": f"""Cancel a run and its child runs: in-flight steps stop and are recorded cancelled; a finished
run is left as it is. Returns its RunResult. {_example("cancel_run")}""",
    "emit_event": f"""Send an event: each trigger it matches starts its workflow, at most once per cooldown per
key; a repeated event_id (24 h) starts nothing. {_example("emit_event")}""",
    "find_tools": f"""Search the registry by text (name or description) and/or tag: each match's name, versions and
description, at most `limit` (default 20); describe_tool gives one's schemas. {_example("find_tools")}""",
    "describe_tool": f"""Describe one tool version: schemas, idempotency, cost, timeout, tags, other versions.
ref is name, name@1.2.3 or a range like name@^1. {_example("describe_tool")}""",
}

SUPERVISE_PROMPT = f"""\
You are supervising work done through Podium's tools. Podium executes; you plan and judge.

1. Find the tools: find_tools (by text or tag), describe_tool for schemas. Pin versions with ranges (name@^1).
2. Plan the smallest pattern that fits: run_chain for ordered work, fan_out for independent sources,
   map_reduce for many items, route for a decision on a value, refine for quality loops with a threshold.
3. Check the plan with validate before a large run; fix every problem it lists.
4. Start the run with an idempotency_key so that a retry of your call never starts a second run.
5. If the result is `running`, call wait_run with its run_id until it settles. Do not start it again.
6. Read the result: `partial` means some data is unavailable (`missing` names it): say so, never invent it.
   `failed` carries error.type and error.step: fix that step (input, schema, fallback, critical: false) and
   start a new run. `limit_exceeded` is a hard limit: do less per run, do not try to get around it.
7. Report the outcome with the run_id so a person can inspect it with `podium runs show RUN_ID`.

{STEP_LANGUAGE}"""
