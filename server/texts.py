"""What a model reads: the server's instructions, each tool's description, and the ``supervise`` prompt."""

from __future__ import annotations

STEP_LANGUAGE = """\
Step language (JSON). A step is one of:
  {"tool": "name@^1.2", "input"?: template, "id"?: "name", "retry"?: {"max_attempts": 3}, "timeout_s"?: 30,
   "fallback"?: "other-tool@1", "critical"?: true}
  {"chain": [step, ...]}     {"fan_out": {"branches": [step, ...], "strategy": "all", "reduce"?: step}}
  {"map_reduce": {"map": step, "reduce"?: step, "chunk_size"?: 1}}
  {"route": {"on": "input.kind", "cases": {"a": step}, "default"?: step}}
  {"refine": {"generate": step, "evaluate": step, "score": "score", "threshold": 0.8}}
  {"gate": {"title": "...", "brief": "...", "approvers": ["legal"], "sla_s": 14400, "escalate_to": ["gc"]}}
Without "input" a step gets what flows in (a chain step: the previous output). A template's {"$": "<JMESPath>"}
values are read from {input, prev, steps, item, results, feedback, run}; e.g. {"amount": {"$": "steps.inv.total"}}.
critical: false turns a failure into a named gap (status partial, path listed in `missing`)."""

INSTRUCTIONS = f"""\
Podium runs multi-step tool work for you reliably: ordering, parallelism, retries, timeouts, fallbacks, quorum,
hard limits and durable state. Find tools with find_tools / describe_tool, check a plan with validate, start it
with run_chain, fan_out, map_reduce, route or refine, and follow it with wait_run / get_run. Every result says
what to do next in `next_action`. Runs keep going after a call returns.

{STEP_LANGUAGE}"""

_RESULT = (
    "Returns a RunResult {run_id, status, output, error, missing, steps, usage, gate, next_action}. If the run "
    "is not done within options.wait_s (default 20 s, max 50) it comes back `running`: call wait_run."
)
_OPTIONS = (
    "options: {wait_s, idempotency_key (a repeat returns the same run), parent_run_id, deadline_s, "
    "budget: {max_steps, max_cost}, tags}."
)

TOOL_DOCS: dict[str, str] = {
    "run_chain": f"""Run steps in order, each getting the previous step's output (a sequential chain).
Use it for linear work where each step needs the prior result: extract -> validate -> post.
Example: steps=[{{"tool": "extract-invoice@^1", "id": "inv"}},
 {{"tool": "check-budget@1", "input": {{"vendor": {{"$": "steps.inv.vendor"}}, "total": {{"$": "steps.inv.total"}}}}}}],
 input={{"text": "..."}}.
{_RESULT} {_OPTIONS}

{STEP_LANGUAGE}""",
    "fan_out": f"""Run independent branches in parallel on the same input, then optionally reduce the results.
strategy: "all" (any failure fails), "best_effort" (failures become gaps named in `missing`; the output list has
null there), "quorum" (done once `quorum` branches succeed; the rest are cancelled). branch_timeout_s turns a
slow branch into a gap instead of blocking. The reduce step gets the results list (also `results` in templates).
Example: branches=[{{"tool": "vendor-financials"}}, {{"tool": "vendor-news"}}], strategy="best_effort",
 branch_timeout_s=5, reduce={{"tool": "synthesize-risk", "input": {{"results": {{"$": "results"}}}}}},
 input={{"vendor": "ACME"}}.
{_RESULT} {_OPTIONS}""",
    "map_reduce": f"""Run one step per item of a list in parallel (map), then optionally combine (reduce).
The map step gets the item (a list of chunk_size items when chunk_size > 1; also `item` in templates); reduce gets
the results in item order. strategy, quorum and item_timeout_s work as in fan_out.
Example: items=["a.pdf", "b.pdf"], map={{"tool": "extract-invoice", "input": {{"text": {{"$": "item"}}}}}},
 reduce={{"tool": "sum-totals"}}.
{_RESULT} {_OPTIONS}""",
    "route": f"""Choose one step by a value of the input (conditional routing).
`on` is JMESPath over {{input}}; its value (strings as-is, others as JSON text such as true or 3) picks the case;
`default` runs when no case matches (without it, no match is an error).
Example: input={{"category": "billing", "text": "..."}}, on="input.category",
 cases={{"billing": {{"tool": "handle-billing"}}, "outage": {{"tool": "handle-outage"}}}},
 default={{"tool": "handle-general"}}.
{_RESULT} {_OPTIONS}""",
    "refine": f"""Improve a result in a loop: generate, evaluate, score; stop at the threshold or a hard limit.
generate gets the input first, then its own last output (`feedback` holds the last evaluation); evaluate gets
the generated output; `score` is JMESPath into the evaluation giving a number. Stops at threshold, max_iterations,
an improvement below min_improvement, time_budget_s or cost_budget. Output: {{output, score, iteration,
reached_threshold, iterations, history, stop_reason}} with the best attempt even when the threshold was not met.
Example: generate={{"tool": "draft-reply"}}, evaluate={{"tool": "grade-reply"}}, score="score", threshold=0.8.
{_RESULT} {_OPTIONS}""",
    "await_approval": f"""Ask a human to approve, modify or reject something before you go on (a gate).
Give a brief the approver can decide on in minutes: what, why, the recommendation and its risks. The run waits
(status `waiting`, `gate` shows who is asked and the SLA deadline) for as long as it takes; it never approves
itself. After sla_s (default 24 h) the gate escalates to the next name in escalate_to; after the last one,
on_timeout applies ("reject", "approve", or "fail"). The output of an approved gate is
{{gate_id, decision, payload, decided_by, comment}} (payload as edited when the approver modified it).
Example: title="Renew ACME contract at +4%", brief="Current terms ..., market ..., recommendation ...",
 payload={{"vendor": "ACME", "increase_pct": 4}}, approvers=["legal@corp"], sla_s=14400, escalate_to=["gc@corp"].
{_RESULT} {_OPTIONS}""",
    "decide_gate": """Decide an open gate: approve, modify (payload is the edited version) or reject, with a comment.
Only for principals with the approver role, and never the principal that opened the gate: a model must not
approve its own request. Example: gate_id="…", decision="approve", comment="terms match the benchmark".""",
    "validate": """Check a step tree without running it: it parses, tool references resolve (and to which versions),
templates name existing steps, static limits hold, and in chains each producer's output schema can satisfy the
next tool's required input. Returns {valid, lock, problems}.
Example: step={"chain": [{"tool": "a"}, {"tool": "b"}]}.""",
    "get_run": """Get a run's current state at once (status, output, error, gaps, steps, usage, next_action).
Example: run_id="0190...". include_steps=false leaves out the per-step list.""",
    "wait_run": """Wait for a run to settle, up to timeout_s (default 20, max 50), then return it.
Call it again while the status is `running`. Example: run_id="0190...", timeout_s=30.""",
    "list_runs": """List recent runs, newest first, optionally by status (e.g. "failed", "partial", "running").
Example: status="failed", limit=10.""",
    "cancel_run": """Cancel a run: its in-flight steps stop and are recorded cancelled; a finished run is left as it
is. Example: run_id="0190...", reason="user changed their mind".""",
    "find_tools": """Search the registry by text (name or description) and/or tag. Each result has the newest
stable version, every version, and the input/output schemas. Example: query="invoice".""",
    "describe_tool": """Describe one tool version: schemas, idempotency, cost, timeout, tags, other versions.
ref is name, name@1.2.3 or a range like name@^1. Example: ref="extract-invoice@^1".""",
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
