"""Approval links under `podium serve --http`: show a gate, decide it, and who may."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from server.auth import token_hash
from tests.server.test_transports import PODIUM, REPO, _env, _free_port, _serve_args, _wait_for_port

pytestmark = pytest.mark.anyio
REQUEST = {"title": "Pay ACME 1,265 EUR", "brief": "Invoice INV-42, PO matched.", "approvers": ["ana", "ops-lead"],
           "payload": {"amount": 1265}, "options": {"wait_s": 1}}  # fmt: skip


async def serve(tmp_path: Path, registry_file: Path, *extra: str) -> AsyncIterator[str]:
    port = _free_port()
    args = [PODIUM, *_serve_args(tmp_path, registry_file, "--http", "--port", str(port), *extra)]
    process = await anyio.open_process(args, env=_env(), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


async def open_gate(base: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers or {}) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        opened = await client.call_tool("await_approval", REQUEST)
    assert opened.structured_content is not None and opened.structured_content["status"] == "waiting"
    return dict(opened.structured_content)


async def test_an_approval_link_shows_the_gate_and_takes_a_decision(tmp_path: Path, registry_file: Path) -> None:
    async for base in serve(tmp_path, registry_file):
        opened = await open_gate(base)
        gate_id = opened["gate"]["gate_id"]
        assert f"{base}/gates/{gate_id}" in opened["next_action"]
        async with httpx2.AsyncClient() as http:
            shown = (await http.get(f"{base}/gates/{gate_id}")).json()
            page = await http.get(f"{base}/gates/{gate_id}", headers={"accept": "text/html"})
            nameless = await http.post(f"{base}/gates/{gate_id}", json={"decision": "approve"})
            stranger = await http.post(f"{base}/gates/{gate_id}", json={"decision": "approve", "as": "zed"})
            approved = await http.post(
                f"{base}/gates/{gate_id}", json={"decision": "approve", "as": "ana", "comment": "PO matched"}
            )
            again = await http.post(f"{base}/gates/{gate_id}", json={"decision": "reject", "as": "ops-lead"})
            missing = await http.get(f"{base}/gates/nope")
        async with Client(f"{base}/mcp") as client:
            done = await client.call_tool("wait_run", {"run_id": opened["run_id"], "timeout_s": 10})
    assert shown["title"] == REQUEST["title"] and shown["payload"] == {"amount": 1265} and shown["status"] == "pending"
    assert "Invoice INV-42, PO matched." in page.text and 'value="approve"' in page.text
    assert nameless.status_code == 400 and "`as`" in nameless.json()["error"]
    assert stranger.status_code == 403 and "'zed' is not an approver" in stranger.json()["error"]
    assert approved.status_code == 200 and approved.json()["decided_by"] == "ana"
    assert again.status_code == 409 and "already decided (approve) by ana" in again.json()["error"]
    assert missing.status_code == 404
    assert done.structured_content is not None and done.structured_content["status"] == "succeeded"


async def test_with_principals_only_an_approver_token_decides(tmp_path: Path, registry_file: Path) -> None:
    config = tmp_path / "podium.toml"
    config.write_text(
        f'[[principal]]\nname = "agent"\nroles = ["supervisor"]\ntoken_sha256 = "{token_hash("agent-token")}"\n'
        f'[[principal]]\nname = "ops-lead"\nroles = ["approver"]\ntoken_sha256 = "{token_hash("lead-token")}"\n'
    )
    async for base in serve(tmp_path, registry_file, "--config", str(config)):
        opened = await open_gate(base, {"Authorization": "Bearer agent-token"})
        url = f"{base}/gates/{opened['gate']['gate_id']}"
        async with httpx2.AsyncClient() as http:
            anonymous = await http.post(url, json={"decision": "approve", "as": "ops-lead"})
            supervisor = await http.post(
                url, json={"decision": "approve"}, headers={"Authorization": "Bearer agent-token"}
            )
            approver = await http.post(
                url, json={"decision": "approve"}, headers={"Authorization": "Bearer lead-token"}
            )
    assert anonymous.status_code == 401
    assert supervisor.status_code == 403 and "approver role" in supervisor.json()["error"]
    assert approver.status_code == 200 and approver.json()["decided_by"] == "ops-lead"


async def test_decide_gate_is_for_approver_principals_other_than_the_opener(
    tmp_path: Path, registry_file: Path
) -> None:
    from mcp.client.streamable_http import streamable_http_client

    config = tmp_path / "podium.toml"
    config.write_text(
        f'[[principal]]\nname = "agent"\nroles = ["supervisor", "approver"]\n'
        f'token_sha256 = "{token_hash("agent-token")}"\n'
        f'[[principal]]\nname = "ops-lead"\nroles = ["approver"]\ntoken_sha256 = "{token_hash("lead-token")}"\n'
    )
    async for base in serve(tmp_path, registry_file, "--config", str(config)):
        opened = await open_gate(base, {"Authorization": "Bearer agent-token"})
        arguments = {"gate_id": opened["gate"]["gate_id"], "decision": "approve", "comment": "ok"}
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer agent-token"}) as http,
            Client(streamable_http_client(f"{base}/mcp", http_client=http)) as opener,
        ):
            own = await opener.call_tool("decide_gate", arguments)
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer lead-token"}) as http,
            Client(streamable_http_client(f"{base}/mcp", http_client=http)) as lead,
        ):
            decided = await lead.call_tool("decide_gate", arguments)
    assert own.is_error and "'agent' opened gate" in own.content[0].text  # type: ignore[union-attr]
    assert not decided.is_error and decided.structured_content is not None
    assert decided.structured_content["status"] == "succeeded"
    assert decided.structured_content["output"]["decided_by"] == "ops-lead"
