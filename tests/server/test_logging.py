"""Run events as MCP log messages: logging/setLevel (2025 era) and the per-request opt-in (2026 era)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from mcp import Client
from mcp.types import LoggingMessageNotificationParams

from server import Settings, build_server

pytestmark = pytest.mark.anyio

RETRY_THEN_GAP = {
    "steps": [
        {"tool": "flaky", "input": {"fail_times": 1, "counter": "?"}, "retry": {"max_attempts": 2, "initial_s": 0}},
        {"tool": "broken", "critical": False},
        {"tool": "broken", "fallback": "echo"},
    ],
    "input": {"x": 1},
}


def retry_then_gap(counter: str) -> dict[str, Any]:
    args: dict[str, Any] = json.loads(json.dumps(RETRY_THEN_GAP))
    args["steps"][0]["input"]["counter"] = counter
    return args


class Logged:
    def __init__(self) -> None:
        self.messages: list[LoggingMessageNotificationParams] = []

    async def __call__(self, params: LoggingMessageNotificationParams) -> None:
        self.messages.append(params)

    def events(self) -> list[tuple[str, str]]:
        return [(m.level, m.data["event"]) for m in self.messages]


def client(settings: Settings, mode: str, logged: Logged, log_level: str | None = None) -> Client:
    with warnings.catch_warnings():  # the SDK marks logging deprecated as of 2026-07-28
        warnings.simplefilter("ignore")
        return Client(build_server(settings), mode=mode, logging_callback=logged, log_level=log_level)  # type: ignore[arg-type]


async def set_level(session: Client, level: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await session.set_logging_level(level)  # type: ignore[arg-type]


async def test_set_level_is_accepted_and_the_capability_declared(settings: Settings) -> None:
    logged = Logged()
    async with client(settings, "legacy", logged) as session:
        assert session.server_capabilities is not None and session.server_capabilities.logging is not None
        for level in ("debug", "warning", "emergency"):
            await set_level(session, level)


async def test_a_caller_that_asked_for_nothing_gets_no_log_messages(
    settings: Settings, mode: str, counter: str
) -> None:
    logged = Logged()
    async with client(settings, mode, logged) as session:
        result = await session.call_tool("run_chain", retry_then_gap(counter))
    assert result.structured_content is not None and result.structured_content["status"] == "partial"
    assert logged.messages == []


async def test_retries_gaps_fallbacks_and_the_ending_come_at_or_above_the_level_set(
    settings: Settings, counter: str
) -> None:
    logged = Logged()
    async with client(settings, "legacy", logged) as session:
        await set_level(session, "warning")
        result = await session.call_tool("run_chain", retry_then_gap(counter))
        assert result.structured_content is not None
        run_id = result.structured_content["run_id"]

        assert logged.events() == [
            ("warning", "retry"),
            ("warning", "gap"),
            ("warning", "fallback"),
            ("warning", "settled"),
        ]
        first = logged.messages[0]
        assert first.logger == "podium"
        assert first.data["run_id"] == run_id and first.data["step"] == "0"
        assert "transient failure 1" in first.data["message"] and "retrying in 0s" in first.data["message"]
        assert logged.messages[1].data["step"] == "1" and "critical: false" in logged.messages[1].data["message"]
        assert "trying the fallback echo@1.0.0" in logged.messages[2].data["message"]
        assert logged.messages[3].data["message"] == f"run {run_id} partial; missing: 1"

        # a higher level filters: a succeeded run's ending is `info`
        await set_level(session, "error")
        logged.messages.clear()
        await session.call_tool("run_chain", {"steps": [{"tool": "echo"}]})
        assert logged.messages == []
        await set_level(session, "info")
        await session.call_tool("run_chain", {"steps": [{"tool": "echo"}]})
        assert logged.events() == [("info", "settled")]


async def test_on_the_2026_protocol_the_request_opts_in(settings: Settings, counter: str) -> None:
    logged = Logged()
    async with client(settings, "auto", logged, log_level="warning") as session:
        await session.call_tool("run_chain", retry_then_gap(counter))
        await session.call_tool("run_chain", {"steps": [{"tool": "echo"}]})  # succeeded: `info`, below the level
    assert [event for _, event in logged.events()] == ["retry", "gap", "fallback", "settled"]


async def test_a_failed_run_ends_with_an_error_naming_the_step(settings: Settings, mode: str) -> None:
    logged = Logged()
    async with client(settings, mode, logged, log_level="debug" if mode == "auto" else None) as session:
        if mode == "legacy":
            await set_level(session, "debug")
        await session.call_tool("run_chain", {"steps": [{"tool": "echo"}, {"tool": "broken"}]})
    [ending] = logged.messages
    assert ending.level == "error" and ending.data["event"] == "settled" and ending.data["step"] == "1"
    assert " failed: " in ending.data["message"]


async def test_an_opened_gate_is_a_notice(settings: Settings, mode: str) -> None:
    logged = Logged()
    gate = {"title": "Renew", "brief": "Renew ACME at +4%", "approvers": ["legal"]}
    async with client(settings, mode, logged, log_level="info" if mode == "auto" else None) as session:
        if mode == "legacy":
            await set_level(session, "info")
        opened = await session.call_tool("await_approval", gate)
        waiting = json.loads(opened.content[0].text)  # type: ignore[union-attr]
        assert waiting["status"] == "waiting"
        assert logged.events() == [("notice", "gate_opened")]
        assert "awaits legal" in logged.messages[0].data["message"]

        logged.messages.clear()
        await session.call_tool("wait_run", {"run_id": waiting["run_id"], "timeout_s": 0})
        assert logged.messages == []  # nothing happened meanwhile
