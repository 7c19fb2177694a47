"""Bearer tokens mapped to the principals of the settings (HTTP only; stdio's caller is the local principal)."""

from __future__ import annotations

import hashlib

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier

from server.config import Principal, Settings

LOCAL = "local"


def token_hash(token: str) -> str:
    """What ``token_sha256`` holds for a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


def principal_of_token(principals: tuple[Principal, ...], token: str) -> Principal | None:
    """The configured principal whose ``token_sha256`` is the hash of ``token`` (None for no or an unknown token)."""
    if not token:
        return None
    digest = token_hash(token)
    return next((p for p in principals if p.token_sha256 == digest), None)


class PrincipalTokens(TokenVerifier):
    """Accepts a bearer token whose SHA-256 a configured principal holds; its roles become the token's scopes."""

    def __init__(self, principals: tuple[Principal, ...]) -> None:
        self._principals = principals

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = principal_of_token(self._principals, token)
        if principal is None:
            return None
        return AccessToken(token=token, client_id=principal.name, scopes=list(principal.roles))


def current_principal() -> str:
    """The principal of the request being served: the token's principal over HTTP, else the local one."""
    token = get_access_token()
    return token.client_id if token is not None and token.client_id else LOCAL


def roles_of(settings: Settings, principal: str) -> tuple[str, ...]:
    """The roles of a configured principal; the local principal (stdio, unauthenticated) has none."""
    for configured in settings.principal:
        if configured.name == principal:
            return configured.roles
    return ()
