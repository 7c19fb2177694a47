"""Approval links: ``GET /gates/{id}`` shows a gate, ``POST /gates/{id}`` decides it (``podium serve --http``).

The SDK does not protect custom routes, so these apply the rules of ``/mcp`` themselves:

- the same Host and Origin checks (on loopback: a ``Host`` other than 127.0.0.1, localhost or [::1] is 421, and a
  cross-site ``Origin`` 403, so a page on another site cannot post a decision to a local server);
- with principals configured, a bearer token (``Authorization`` header, or the page's ``token`` field) of one of
  them to see a gate, and of one with the approver role to decide it, recorded under that principal; with none
  configured the server listens on loopback only and, like the CLI, takes the approver's name from ``as``;
- a body of at most ``max_request_bytes``, JSON (an object) or a form; every field of the right type.

Every refusal is a 4xx naming the problem: 400 bad input, 401/403 who may not, 404 no such gate, 409 a gate no
longer pending, 413 too large, 415 another content type.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from patterns import PatternError
from patterns.errors import GateError
from server.auth import principal_of_token
from server.lifespan import AppState, Running
from server.results import gate_detail
from storage import GateNotFound

LOOPBACK = ("127.0.0.1", "localhost", "::1")
FIELDS = {"decision": str, "comment": str, "as": str, "token": str}
GATE_ERROR_STATUS = {
    "already_decided": 409,
    "expired": 409,
    "timed_out": 409,
    "opener": 403,
    "not_an_approver": 403,
}


def host_checks(host: str) -> TransportSecuritySettings | None:
    """The Host/Origin checks for a server bound to ``host``: on loopback, only local names and origins (what the
    SDK applies to ``/mcp`` by default); elsewhere none (a deployment behind a proxy sets its own)."""
    if host not in LOOPBACK:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _page(gate: dict[str, Any], notice: str = "", *, named: bool = True) -> HTMLResponse:
    esc = html.escape
    form = ""
    if gate["status"] == "pending":
        who = (
            '<label>Your name <input name="as"></label>'
            if named
            else '<label>Your token <input name="token" type="password"></label>'
        )
        form = (
            f'<form method="post"><p>{who}</p>'
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


def _sign_in_page() -> HTMLResponse:
    """What a browser gets without a token when principals are configured: a form asking for one."""
    body = (
        "<h1>Sign in to see this gate</h1><p>This server needs the bearer token of a principal.</p>"
        '<form method="post"><label>Token <input name="token" type="password"></label> '
        "<button>Show the gate</button></form>"
    )
    return HTMLResponse(f"<!doctype html><title>Sign in</title><body>{body}</body>", status_code=401)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request's body, read up to ``limit`` bytes. Raises ``BadRequest`` (413 over it, 400 cut short)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is {declared} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"the body is over {limit} bytes, the most accepted")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest(400, "the client went away before the body arrived") from None
    return b"".join(chunks)


async def _body(request: Request, limit: int) -> dict[str, Any]:
    """The request's fields, from JSON or a form, read up to ``limit`` bytes. Raises ``BadRequest``."""
    raw = await read_limited(request, limit)
    kind = request.headers.get("content-type", "application/x-www-form-urlencoded").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest(400, "the body is not valid JSON; send {decision, comment?, payload?, as?}") from None
        if not isinstance(data, dict):
            raise BadRequest(
                400, f"the body must be a JSON object {{decision, comment?, payload?, as?}}, not {type(data).__name__}"
            )
    elif kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(400, "the form could not be read (at most 20 fields, UTF-8)") from None
        data = {key: values[-1] for key, values in pairs.items()}
    else:
        raise BadRequest(415, f"send application/json or a form (application/x-www-form-urlencoded), not {kind!r}")
    for name, kind_of in FIELDS.items():
        if data.get(name) is not None and not isinstance(data[name], kind_of):
            raise BadRequest(400, f"`{name}` must be a string, not {type(data[name]).__name__}")
    return data


def add_approval_routes(mcp: MCPServer, running: Running, host: str) -> None:
    """Register the approval-link routes; ``running`` holds the server's state while it runs, and ``host`` is the
    address the server binds (its Host and Origin checks follow from it)."""
    security = TransportSecurityMiddleware(host_checks(host))

    async def guarded(handler: Callable[[AppState, Request], Awaitable[Response]], request: Request) -> Response:
        refused = await security.validate_request(request, is_post=False)
        if refused is not None:
            return refused
        app = running.state
        if app is None:
            return error_response(503, "the server is starting")
        try:
            return await handler(app, request)
        except GateNotFound as exc:
            return error_response(404, exc.message)
        except BadRequest as exc:
            return error_response(exc.status, exc.message)

    async def show(app: AppState, request: Request) -> Response:
        html_wanted = "text/html" in request.headers.get("accept", "")
        if app.settings.principal and _principal(app, bearer(request)) is None:
            return _sign_in_page() if html_wanted else error_response(401, "a bearer token of a principal is required")
        gate = gate_detail(await app.store.gates.get(request.path_params["gate_id"])).model_dump(mode="json")
        return _page(gate, named=not app.settings.principal) if html_wanted else JSONResponse(gate)

    async def decide(app: AppState, request: Request) -> Response:
        form = "application/json" not in request.headers.get("content-type", "")
        body = await _body(request, app.settings.max_request_bytes)
        token = bearer(request) or body.get("token") or ""
        if form and app.settings.principal and body.get("decision") is None:
            if _principal(app, token) is None:  # the sign-in form: show the gate to a holder of a token
                return _sign_in_page()
            gate = gate_detail(await app.store.gates.get(request.path_params["gate_id"])).model_dump(mode="json")
            return _page(gate, named=False)
        decider = _decider(app, token, body)
        try:
            decided = await app.engine.decide_gate(
                request.path_params["gate_id"],
                body.get("decision") or "",
                decider,
                body.get("comment") or None,
                body.get("payload"),
            )
        except GateError as exc:
            return error_response(GATE_ERROR_STATUS.get(exc.reason, 400), exc.message)
        except PatternError as exc:  # a modified payload that breaks the gate's payload schema
            return error_response(400, exc.message)
        detail = gate_detail(decided).model_dump(mode="json")
        return (
            _page(detail, "Recorded. The run goes on.", named=not app.settings.principal)
            if form
            else (JSONResponse(detail))
        )

    async def gate_route(request: Request) -> Response:
        return await guarded(show if request.method == "GET" else decide, request)

    mcp.custom_route("/gates/{gate_id}", methods=["GET", "POST"], name="gate")(gate_route)


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def _principal(app: AppState, token: str) -> tuple[str, tuple[str, ...]] | None:
    """The configured principal holding ``token``, with its roles."""
    found = principal_of_token(app.settings.principal, token)
    return None if found is None else (found.name, found.roles)


def _decider(app: AppState, token: str, body: dict[str, Any]) -> str:
    """Who decides: the approver principal of the token, or (no principals configured) the given name."""
    if not app.settings.principal:
        name = str(body.get("as") or "").strip()
        if not name:
            raise BadRequest(400, "say who decides: `as` (the approver's name)")
        return name
    found = _principal(app, token)
    if found is None:
        raise BadRequest(401, "a bearer token of an approver principal is required")
    name, roles = found
    if "approver" not in roles:
        raise BadRequest(403, f"{name!r} does not have the approver role")
    return name
