"""`POST /events` under `podium serve --http`: a webhook sends events; who may, and every refusal."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from server.auth import token_hash
from server.demo import TOOLS_FILE
from tests.server.test_approval_links import serve

pytestmark = pytest.mark.anyio


async def test_a_webhook_event_fires_the_demo_trigger_once_per_cooldown(tmp_path: Path) -> None:
    config = tmp_path / "podium.toml"
    config.write_text(
        f'[[principal]]\nname = "crm"\nroles = ["emitter"]\ntoken_sha256 = "{token_hash("crm-token")}"\n'
        f'[[principal]]\nname = "agent"\nroles = ["supervisor"]\ntoken_sha256 = "{token_hash("agent-token")}"\n'
    )
    event = {"type": "contract.renewal_due", "key": "C-1001/2027-01", "payload": {"contract_id": "C-1001"}}
    async for base in serve(tmp_path, TOOLS_FILE, "--config", str(config)):
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer crm-token"}) as http:
            first = await http.post(f"{base}/events", json={**event, "event_id": "crm-1"})
            again = await http.post(f"{base}/events", json={**event, "event_id": "crm-2"})
            not_json = await http.post(
                f"{base}/events", content=b"type=x", headers={"Content-Type": "application/json"}
            )
            form = await http.post(f"{base}/events", data={"type": "x"})
            bad_type = await http.post(f"{base}/events", json={"type": "no spaces please"})
            unknown = await http.post(f"{base}/events", json={"type": "a", "colour": "red"})
        async with httpx2.AsyncClient() as http:
            anonymous = await http.post(f"{base}/events", json=event)
            supervisor = await http.post(f"{base}/events", json=event, headers={"Authorization": "Bearer agent-token"})
    assert first.status_code == 200, first.text
    [fired] = first.json()["fired"]
    assert fired["trigger"] == "contract-renewals" and fired["key"] == "C-1001/2027-01"
    assert again.status_code == 200 and again.json()["suppressed"][0]["reason"] == "cooldown"
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    assert form.status_code == 400 and "Content-Type" in form.text  # the transport checks refuse it first
    assert bad_type.status_code == 400 and "event type 'no spaces please' is not allowed" in bad_type.json()["error"]
    assert unknown.status_code == 400 and "unknown field(s) colour" in unknown.json()["error"]
    assert anonymous.status_code == 401 and "emitter or admin role" in anonymous.json()["error"]
    assert (
        supervisor.status_code == 403
        and "'agent' has neither the emitter nor the admin role" in supervisor.json()["error"]
    )
