"""``podium demo``: five scenarios from the seed articles, published as workflows and started with ``run_workflow``
through the MCP tools as an LLM client would; then renewal events through a trigger, and a downstream MCP server.

- an invoice chain (``invoice``): extract, match the purchase order, check the budget, score the risk, post;
- a vendor-risk fan-out (``vendor_risk``): five sources in parallel, the slow news source timing out into
  "data unavailable", then a synthesis of what arrived;
- a support-ticket router (``support``): classify, then the matching handler;
- a contract amendment (``contracts``): draft a renewal, two human approval gates, then send for signature;
- an employee onboarding (``onboarding``): a coordinator delegating to IT, finance and kickoff workflows as child
  runs, the kickoff after IT;
- contract renewals (``renewals``): renewal-due events sent with ``emit_event`` start the amendment workflow
  through a trigger, a re-delivered event and one within the cooldown start nothing;
- shipping (``shipping``, ``shipping_server``): a real MCP server imported over stdio, its tools called in a chain,
  and a circuit breaker opening on the carrier whose API is down, after which the route skips it.

The tools are small deterministic Python functions declared in ``tools.toml`` as ``name@1.0.0``, beside the
workflows; ``runner`` holds the scenarios' inputs and runs them (``run_demo``).
"""

from server.demo.runner import INVOICE_TEXT, SCENARIOS, TOOLS_FILE, run_demo

__all__ = ["INVOICE_TEXT", "SCENARIOS", "TOOLS_FILE", "run_demo"]
