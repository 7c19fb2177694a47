"""The demo's event scenario: renewal-due events for two contracts start their amendment workflows through the
demo registry's ``contract-renewals`` trigger; a re-delivered event and a second event within the cooldown start
nothing; then each run's two human gates are decided as in the contract scenario."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client

from server.results import RunResult

TITLE = "Contract renewals: events, de-duplicated and cooled down per contract"
STORY = (
    "A renewal-due event starts the contract-amendment workflow for its contract (the trigger contract-renewals, at "
    "most once per 4 hours per contract and cycle). C-1001's event is delivered twice and a second one follows; "
    "C-2002's once: two runs, one duplicate, one cooldown suppression. Then each run's gates are decided."
)


def events(cycle: str) -> list[tuple[str, str]]:
    """(event id, contract) in the order sent; ``cycle`` keeps demo runs apart (each is a renewal cycle)."""
    return [
        (f"renewal-C-1001-{cycle}", "C-1001"),
        (f"renewal-C-1001-{cycle}", "C-1001"),  # the same event, delivered again
        (f"renewal-C-1001-{cycle}-reminder", "C-1001"),  # a second event for the same contract, within the cooldown
        (f"renewal-C-2002-{cycle}", "C-2002"),
    ]


async def run_renewals(
    client: Client, follow: Callable[[str], Awaitable[RunResult]]
) -> tuple[list[dict[str, Any]], list[RunResult]]:
    """Send the events through ``emit_event``; ``follow(run_id)`` takes a fired run to its end (deciding its gates).
    Returns the answers and the finished runs."""
    cycle = time.strftime("%Y%m%d-%H%M%S")
    answers: list[dict[str, Any]] = []
    for event_id, contract in events(cycle):
        arguments = {
            "type": "contract.renewal_due",
            "key": f"{contract}/{cycle}",
            "payload": {"contract_id": contract},
            "event_id": event_id,
        }
        result = await client.call_tool("emit_event", arguments)
        if result.is_error or result.structured_content is None:
            text = result.content[0].text if result.content else "no content"  # type: ignore[union-attr]
            raise RuntimeError(f"emit_event failed: {text}")
        answer = result.structured_content
        answers.append(answer)
        said = [f"fired {f['trigger']} -> run {f['run_id']}" for f in answer["fired"]]
        said += [f"suppressed {s['trigger']} ({s['reason']} until {s['until']})" for s in answer["suppressed"]]
        print(f"   MCP call: emit_event {event_id} ({contract}): {'; '.join(said) or 'nothing matched'}")
    runs = [await follow(f["run_id"]) for answer in answers for f in answer["fired"]]
    return answers, runs
