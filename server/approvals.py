"""Approval links: ``GET /gates/{id}`` shows a gate, ``POST /gates/{id}`` decides it (``podium serve --http``).

The SDK does not protect custom routes, so this checks the caller itself. With principals configured, a
decision needs the bearer token (``Authorization`` header, or a ``token`` form field from the page) of a
principal holding the approver role, and is recorded under that principal. With none configured the server
listens on loopback only and, like the CLI, takes the approver's name from ``as``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from patterns import PatternError, gates
from server.auth import token_hash
from server.results import gate_detail
from storage import GateNotFound

if TYPE_CHECKING:
    from server.app import AppState


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _page(gate: dict[str, Any], notice: str = "") -> HTMLResponse:
    esc = html.escape
    form = ""
    if gate["status"] == "pending":
        form = (
            '<form method="post"><p><label>Your name <input name="as"></label> '
            '<label>or token <input name="token" type="password"></label></p>'
            '<p><textarea name="comment" rows="3" cols="60" placeholder="Comment"></textarea></p>'
            '<button name="decision" value="approve">Approve</button> '
            '<button name="decision" value="reject">Reject</button></form>'
        )
    body = (
        f"<h1>{esc(gate['title'])}</h1><p><b>{esc(gate['status'])}</b>"
        + (f" — {esc(str(gate['decision']))} by {esc(str(gate['decided_by']))}" if gate["decision"] else "")
        + f"</p><p>{esc(notice)}</p><h2>Brief</h2><pre>{esc(gate['brief'])}</pre>"
        f"<h2>Payload</h2><pre>{esc(json.dumps(gate['payload'], indent=2, ensure_ascii=False))}</pre>"
        f"<p>Asked: {esc(', '.join(gate['approvers']) or 'any approver')}</p>{form}"
    )
    return HTMLResponse(f"<!doctype html><title>{esc(gate['title'])}</title><body>{body}</body>")


def add_approval_routes(mcp: MCPServer, state: Callable[[], AppState | None]) -> None:
    """Register the approval-link routes; ``state`` gives the running server's state (None before start-up)."""

    async def with_state(handler: Callable[[AppState, Request], Awaitable[Response]], request: Request) -> Response:
        app = state()
        if app is None:
            return _error(503, "the server is starting")
        try:
            return await handler(app, request)
        except GateNotFound as exc:
            return _error(404, exc.message)

    async def show(app: AppState, request: Request) -> Response:
        gate = gate_detail(await app.store.gates.get(request.path_params["gate_id"])).model_dump(mode="json")
        if "text/html" in request.headers.get("accept", ""):
            return _page(gate)
        return JSONResponse(gate)

    async def decide(app: AppState, request: Request) -> Response:
        form = "application/json" not in request.headers.get("content-type", "")
        try:
            body: dict[str, Any] = dict(await request.form()) if form else await request.json()
        except ValueError:
            return _error(400, "the body must be JSON: {decision, comment?, payload?, as?}")
        decider = _decider(app, request, body)
        if isinstance(decider, Response):
            return decider
        try:
            decided = await gates.decide(
                app.store,
                request.path_params["gate_id"],
                str(body.get("decision", "")),
                decider,
                body.get("comment") or None,
                body.get("payload"),
            )
        except PatternError as exc:
            return _error(409 if "already decided" in exc.message or "expired" in exc.message else 400, exc.message)
        await app.engine.resume(decided.run_id)
        detail = gate_detail(decided).model_dump(mode="json")
        return _page(detail, "Recorded. The run goes on.") if form else JSONResponse(detail)

    async def gate_route(request: Request) -> Response:
        return await with_state(show if request.method == "GET" else decide, request)

    mcp.custom_route("/gates/{gate_id}", methods=["GET", "POST"], name="gate")(gate_route)


def _decider(app: AppState, request: Request, body: dict[str, Any]) -> str | Response:
    """Who decides: the approver principal of the bearer token, or (no principals configured) the given name."""
    principals = app.settings.principal
    if not principals:
        name = str(body.get("as") or "").strip()
        return name or _error(400, "say who decides: `as` (the approver's name)")
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else str(body.get("token") or "")
    for principal in principals:
        if token and principal.token_sha256 == token_hash(token):
            if "approver" not in principal.roles:
                return _error(403, f"{principal.name!r} does not have the approver role")
            return principal.name
    return _error(401, "a bearer token of an approver principal is required")
