"""``POST /events`` under ``podium serve --http``: webhooks send events as JSON.

The body is ``{"type", "key"?, "payload"?, "event_id"?}`` and the answer is what ``emit_event`` answers: ``{event_id,
duplicate, fired, suppressed, skipped}``. With principals configured, only the bearer token of one with the
``emitter`` or ``admin`` role is accepted (the event is recorded under its name); with none, the server listens on
loopback only and accepts local senders. Refusals are specific: 400 not JSON or a bad field (named), 401 no or an
unknown token, 403 a principal without the role, 413 over ``max_request_bytes``, 415 another content type; the
same Host and Origin checks as ``/mcp`` apply.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from patterns import PatternError
from server.approvals import BadRequest, bearer, error_response, host_checks, read_limited
from server.auth import principal_of_token
from server.lifespan import AppState, Running
from server.results import EventAnswer

SENDER_ROLES = ("emitter", "admin")


def add_event_routes(mcp: MCPServer, running: Running, host: str) -> None:
    """Register ``POST /events``; ``host`` is the address the server binds (its Host and Origin checks follow)."""
    security = TransportSecurityMiddleware(host_checks(host))

    async def events(request: Request) -> Response:
        refused = await security.validate_request(request, is_post=True)
        if refused is not None:
            return refused
        app = running.state
        if app is None:
            return error_response(503, "the server is starting")
        try:
            sender = _sender(app, bearer(request))
            fields = _event(request, await read_limited(request, app.settings.max_request_bytes))
            answer = await app.engine.emit(
                fields["type"],
                fields.get("payload"),
                key=fields.get("key"),
                event_id=fields.get("event_id"),
                source=sender,
            )
        except BadRequest as exc:
            return error_response(exc.status, exc.message)
        except PatternError as exc:  # a bad type, key or id, or a payload over the limit
            return error_response(400, exc.message)
        return JSONResponse(EventAnswer.model_validate(answer).model_dump(mode="json"))

    mcp.custom_route("/events", methods=["POST"], name="events")(events)


def _sender(app: AppState, token: str) -> str:
    if not app.settings.principal:
        return "webhook"
    found = principal_of_token(app.settings.principal, token)
    if found is None:
        raise BadRequest(401, "a bearer token of a principal with the emitter or admin role is required")
    if not set(found.roles) & set(SENDER_ROLES):
        raise BadRequest(403, f"{found.name!r} has neither the emitter nor the admin role")
    return found.name


def _event(request: Request, raw: bytes) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest(415, f"send the event as application/json, not {kind or 'no content type'!r}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest(400, 'the body is not valid JSON; send {"type", "key"?, "payload"?, "event_id"?}') from None
    if not isinstance(data, dict):
        raise BadRequest(400, f'the body must be a JSON object {{"type", ...}}, not {type(data).__name__}')
    unknown = sorted(set(data) - {"type", "key", "payload", "event_id"})
    if unknown:
        raise BadRequest(400, f"unknown field(s) {', '.join(unknown)}; allowed: type, key, payload, event_id")
    if not isinstance(data.get("type"), str):
        raise BadRequest(400, "`type` (a string, e.g. contract.renewal_due) is required")
    return data
