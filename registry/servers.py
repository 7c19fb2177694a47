"""Downstream MCP servers: how to reach one (``[[server]]`` in registry files), and their tools' schema hashes.

A server is started over stdio (``command``, ``env``, ``cwd``) or reached over streamable HTTP (``url``,
``headers``). Values may name Podium's environment variables as ``${VAR}``; they are expanded when a session
opens, never stored expanded, so a credential stays in the environment of the process that uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.errors import InvalidToolSpec

SERVER_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_ARGS = 64
MAX_ENTRIES = 64
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ServerSpec(BaseModel):
    """A downstream MCP server. Servers are not versioned: registering one again replaces how it is reached (its
    tools, which are versioned, carry the hashes that tell whether it still serves what they pinned)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=SERVER_NAME_PATTERN, description="Its tools are imported as NAME.TOOL.")
    command: tuple[str, ...] | None = Field(None, min_length=1, max_length=MAX_ARGS)
    env: dict[str, str] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    cwd: str | None = None
    url: str | None = Field(None, pattern=r"^https?://", max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Longest a call to it may take.")
    mode: Literal["auto", "legacy"] = Field(
        "auto", description="The protocol era to speak: auto negotiates; legacy forces initialize (2025-11-25)."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> ServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("a server needs exactly one of `command` (stdio) or `url` (streamable HTTP)")
        if self.url is not None and (self.env or self.cwd is not None):
            raise ValueError("`env` and `cwd` are for a server started with `command`, not one reached at `url`")
        if self.command is not None and self.headers:
            raise ValueError("`headers` are for a server reached at `url`, not one started with `command`")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def definition(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def definition_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode()).hexdigest()

    def expanded(self, environ: Mapping[str, str] | None = None) -> ServerSpec:
        """This spec with every ``${VAR}`` replaced from ``environ`` (default: this process's environment).

        Raises:
            InvalidToolSpec: naming the variables that are not set.
        """
        where = f"server {self.name!r}"
        return self.model_copy(
            update={
                "command": None
                if self.command is None
                else tuple(expand_text(a, where, environ) for a in self.command),
                "env": {k: expand_text(v, where, environ) for k, v in self.env.items()},
                "cwd": None if self.cwd is None else expand_text(self.cwd, where, environ),
                "url": None if self.url is None else expand_text(self.url, where, environ),
                "headers": {k: expand_text(v, where, environ) for k, v in self.headers.items()},
            }
        )


def expand_text(text: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every ``${VAR}`` replaced from ``environ`` (default: this process's environment).

    Raises:
        InvalidToolSpec: naming ``where`` and the variables that are not set.
    """
    environ = os.environ if environ is None else environ
    missing = [name for name in _VARIABLE.findall(text) if name not in environ]
    if missing:
        names = ", ".join(f"${{{n}}}" for n in sorted(set(missing)))
        raise InvalidToolSpec(
            f"{where} uses {names}, which {'is' if len(missing) == 1 else 'are'} not set in Podium's environment"
        )
    return _VARIABLE.sub(lambda match: environ[match.group(1)], text)


def schema_sha256(input_schema: Any, output_schema: Any) -> str:
    """The hash an imported tool pins: SHA-256 of the canonical JSON of ``{inputSchema, outputSchema}``."""
    canonical = json.dumps(
        {"inputSchema": input_schema, "outputSchema": output_schema}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
