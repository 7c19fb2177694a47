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
from tests.helpers import PODIUM, REPO, free_port, serve_args, server_env, wait_for_port

pytestmark = pytest.mark.anyio
REQUEST = {"title": "Pay ACME 1,265 EUR", "brief": "Invoice INV-42, PO matched.", "approvers": ["ana", "ops-lead"],
           "payload": {"amount": 1265}, "options": {"wait_s": 1}}  # fmt: skip


async def serve(tmp_path: Path, registry_file: Path, *extra: str) -> AsyncIterator[str]:
    port = free_port()
    args = [PODIUM, *serve_args(tmp_path, registry_file, "--http", "--port", str(port), *extra)]
    process = await anyio.open_process(args, env=server_env(), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        await wait_for_port(port, process)
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


async def test_with_principals_seeing_a_gate_needs_a_token_too(tmp_path: Path, registry_file: Path) -> None:
    config = tmp_path / "podium.toml"
    config.write_text(
        f'[[principal]]\nname = "agent"\nroles = ["supervisor"]\ntoken_sha256 = "{token_hash("agent-token")}"\n'
    )
    async for base in serve(tmp_path, registry_file, "--config", str(config)):
        opened = await open_gate(base, {"Authorization": "Bearer agent-token"})
        url = f"{base}/gates/{opened['gate']['gate_id']}"
        async with httpx2.AsyncClient() as http:
            anonymous = await http.get(url)
            page = await http.get(url, headers={"accept": "text/html"})
            wrong = await http.get(url, headers={"Authorization": "Bearer guess"})
            signed_in = await http.post(url, data={"token": "agent-token"})
            shown = await http.get(url, headers={"Authorization": "Bearer agent-token"})
    assert anonymous.status_code == 401 and "token" in anonymous.json()["error"]
    assert "Pay ACME" not in anonymous.text and "Invoice INV-42" not in page.text
    assert page.status_code == 401 and 'name="token"' in page.text
    assert wrong.status_code == 401
    assert signed_in.status_code == 200 and "Invoice INV-42, PO matched." in signed_in.text
    assert shown.status_code == 200 and shown.json()["title"] == REQUEST["title"]


async def test_approval_links_apply_the_host_and_origin_checks_of_mcp(tmp_path: Path, registry_file: Path) -> None:
    async for base in serve(tmp_path, registry_file):
        opened = await open_gate(base)
        url = f"{base}/gates/{opened['gate']['gate_id']}"
        async with httpx2.AsyncClient() as http:
            rebound = await http.get(url, headers={"host": "evil.example"})
            mcp_rebound = await http.post(f"{base}/mcp", json={}, headers={"host": "evil.example"})
            cross_site = await http.post(
                url, data={"decision": "approve", "as": "ana"}, headers={"origin": "http://evil.example"}
            )
            same_site = await http.get(url, headers={"origin": base})
    assert rebound.status_code == mcp_rebound.status_code == 421
    assert cross_site.status_code == 403
    assert same_site.status_code == 200 and same_site.json()["status"] == "pending"  # the forged post changed nothing


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        pytest.param(b"[1,2]", "application/json", 400, "must be a JSON object", id="array"),
        pytest.param(b'"x"', "application/json", 400, "must be a JSON object", id="string"),
        pytest.param(b"null", "application/json", 400, "must be a JSON object", id="null"),
        pytest.param(b"[" * 5_000 + b"]" * 5_000, "application/json", 400, "not valid JSON", id="deep"),
        pytest.param(b"{", "application/json", 400, "not valid JSON", id="broken"),
        pytest.param(
            b'{"decision": "approve", "comment": {"x": 1}}',
            "application/json",
            400,
            "`comment` must be a string",
            id="comment-object",
        ),  # fmt: skip
        pytest.param(
            b'{"decision": "approve", "as": {"x": 1}}', "application/json", 400, "`as` must be a string", id="as-object"
        ),  # fmt: skip
        pytest.param(
            b'{"decision": 1, "as": "ana"}',
            "application/json",
            400,
            "`decision` must be a string",
            id="decision-number",
        ),  # fmt: skip
        pytest.param(
            b'{"decision": "approve", "as": "system:sla"}', "application/json", 400, "reserved", id="reserved-name"
        ),  # fmt: skip
        pytest.param(
            b'{"decision": "approve", "as": "ana", "comment": "' + b"c" * 5_000 + b'"}',
            "application/json",
            400,
            "at most 4096 characters",
            id="long-comment",
        ),  # fmt: skip
        pytest.param(b"decision=approve&as=ana", "text/plain", 415, "application/json", id="text"),
        pytest.param(b'{"comment": "' + b"c" * 5_000_000 + b'"}', "application/json", 413, "at most", id="5-MB"),
    ],
)
async def test_a_bad_decision_body_is_a_4xx_naming_the_problem_and_decides_nothing(
    tmp_path: Path, registry_file: Path, body: bytes, content_type: str, status: int, says: str
) -> None:
    async for base in serve(tmp_path, registry_file):
        opened = await open_gate(base)
        url = f"{base}/gates/{opened['gate']['gate_id']}"
        async with httpx2.AsyncClient() as http:
            answer = await http.post(url, content=body, headers={"content-type": content_type})
            after = await http.get(url)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]
    assert after.json()["status"] == "pending"


async def test_deciding_a_gate_that_timed_out_is_a_conflict(tmp_path: Path, registry_file: Path) -> None:
    request = {**REQUEST, "sla_s": 0.3, "on_timeout": "fail"}
    async for base in serve(tmp_path, registry_file):
        async with Client(f"{base}/mcp") as client:
            opened = await client.call_tool("await_approval", request)
        assert opened.structured_content is not None
        url = f"{base}/gates/{opened.structured_content['gate']['gate_id']}"
        async with httpx2.AsyncClient() as http:
            with anyio.fail_after(20):
                while (await http.get(url)).json()["status"] != "timed_out":
                    await anyio.sleep(0.1)
            late = await http.post(url, json={"decision": "approve", "as": "ana"})
    assert late.status_code == 409 and "timed out" in late.json()["error"]
