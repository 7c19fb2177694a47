"""A run's events as MCP log messages, to the caller that waits on the run.

A client asks for them with ``logging/setLevel`` (protocols up to 2025-11-25: for the rest of its connection) or,
on 2026-07-28, with the per-request log-level ``_meta`` opt-in. While a call waits on a run (the run-starting
tools, ``wait_run``, ``await_approval``, ``decide_gate``), that run's retries, fallbacks, gaps, gate events and
its ending are sent as ``notifications/message`` at or above the level asked (logger ``podium``), before the
call's result. A client that asked for nothing gets none. At most ``MAX_QUEUED`` events wait to be sent; past
that, one message says how many were left out.
"""

from __future__ import annotations

from typing import Any, Final, get_args

from mcp.server.connection import allowed_log_levels
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.types import (
    EmptyResult,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
    SetLevelRequestParams,
)

from patterns.events import RunEvent

LEVELS: Final[tuple[LoggingLevel, ...]] = get_args(LoggingLevel)
_ASKED = "podium.log_level"
MAX_QUEUED = 100
PER_REQUEST_SINCE = "2026-07-28"  # protocol versions are dates: from this one on, no logging/setLevel
LOGGER = "podium"


def _connection_state(session: Any) -> dict[str, Any] | None:
    # the SDK keeps the per-connection scratch dict on the connection, which a request reaches through its
    # session only; None where a session has no connection (it then keeps no level)
    connection = getattr(session, "_connection", None)
    state = getattr(connection, "state", None)
    return state if isinstance(state, dict) else None


async def set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
    """``logging/setLevel``: send this connection's run events at ``params.level`` and above."""
    state = _connection_state(ctx.session)
    if state is not None:
        state[_ASKED] = params.level
    return EmptyResult()


def wanted(ctx: Context[Any, Any]) -> frozenset[LoggingLevel]:
    """The levels this request's caller asked to hear."""
    request = ctx.request_context
    if request.protocol_version >= PER_REQUEST_SINCE:  # the request's own opt-in decides
        return allowed_log_levels(request.protocol_version, request.meta)
    asked = (_connection_state(request.session) or {}).get(_ASKED)
    if asked not in LEVELS:
        return frozenset()
    return frozenset(LEVELS[LEVELS.index(asked) :])


class Forwarder:
    """Queues a run's events for one call, and sends them when the call says (``flush``)."""

    def __init__(self, ctx: Context[Any, Any], levels: frozenset[LoggingLevel]) -> None:
        self._ctx = ctx
        self._levels = levels
        self._queue: list[RunEvent] = []
        self._dropped = 0

    def __call__(self, event: RunEvent) -> None:
        if event.level not in self._levels:
            return
        if len(self._queue) >= MAX_QUEUED:
            self._dropped += 1
            return
        self._queue.append(event)

    async def flush(self) -> None:
        queued, self._queue = self._queue, []
        request = self._ctx.request_context
        for event in queued:
            await _send(request, event.level, event.to_dict())
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            if "warning" in self._levels:
                message = f"{dropped} more run event(s) not sent: more than {MAX_QUEUED} came at once"
                await _send(request, "warning", {"message": message})


async def _send(request: ServerRequestContext[Any, Any], level: LoggingLevel, data: dict[str, str]) -> None:
    notification = LoggingMessageNotification(
        params=LoggingMessageNotificationParams(level=level, data=data, logger=LOGGER)
    )
    await request.session.send_notification(notification, related_request_id=request.request_id)


def forwarder(ctx: Context[Any, Any]) -> Forwarder | None:
    """A forwarder of run events to this call's caller, or None when it asked for no log messages."""
    levels = wanted(ctx)
    return Forwarder(ctx, levels) if levels else None
