"""Tool specifications: the immutable ``name@version`` definitions that runs pin."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.semver import Version
from storage.jsonshape import shape

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)


class RetryPolicy(BaseModel):
    """How a failed tool call is retried: exponential backoff with jitter, capped.

    Attempt ``n`` (1-based) that fails waits ``min(max_s, initial_s * backoff ** (n - 1))``, spread by
    ``± jitter`` of itself, before attempt ``n + 1``. Deterministic failures (contract violations, invalid
    input, errors a tool marks permanent) are never retried.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_attempts: int = Field(3, ge=1, le=100, description="Total attempts, the first included.")
    initial_s: float = Field(0.2, ge=0, le=3600, description="Delay before the second attempt.")
    backoff: float = Field(2.0, ge=1, le=10, description="Multiplier applied to the delay after each attempt.")
    max_s: float = Field(30.0, ge=0, le=3600, description="Cap on any single delay.")
    jitter: float = Field(0.2, ge=0, le=1, description="Fraction of the delay randomised either way.")

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_s, self.initial_s * self.backoff ** (attempt - 1))
        if self.jitter == 0 or base == 0:
            return base
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))


NO_RETRY = RetryPolicy(max_attempts=1)


class BreakerSettings(BaseModel):
    """When a tool version's circuit breaker opens, and for how long (see ``patterns.breakers``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    min_calls: int = Field(10, ge=1, le=100_000, description="Calls within the window before the rate counts.")
    failure_rate: float = Field(0.5, gt=0, le=1, description="Share of transient failures that opens it.")
    window_s: float = Field(60.0, ge=5, le=86_400, description="The window the rate is computed over.")
    open_s: float = Field(30.0, gt=0, le=86_400, description="How long it stays open first; doubles per re-open.")
    max_open_s: float = Field(300.0, gt=0, le=86_400, description="The cap on the open time.")


class PythonProvider(BaseModel):
    """A Python callable, ``module:function`` (dotted attribute paths allowed after the colon)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["python"] = "python"
    target: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class McpProvider(BaseModel):
    """A tool of a downstream MCP server declared in a ``[[server]]`` table (``registry.servers``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["mcp"] = "mcp"
    server: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    tool: str = Field(min_length=1, max_length=128)


class HttpProvider(BaseModel):
    """An HTTP endpoint: the input is sent as JSON and the JSON response is the output. Header values may name
    environment variables as ``${VAR}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://", max_length=2048)
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict, max_length=64)


Provider = Annotated[PythonProvider | McpProvider | HttpProvider, Field(discriminator="type")]


MAX_SCHEMA_DEPTH = 64
# Schemas known to be valid, by their canonical JSON (most recent last): checking one against the 2020-12
# metaschema takes milliseconds, and the same schemas come back on every start (from the registry files and from
# the store, where only checked schemas are ever written).
_VALID_SCHEMAS: dict[str, None] = {}
MAX_VALID_SCHEMAS = 4096


def _schema_key(schema: dict[str, Any]) -> str | None:
    try:
        return json.dumps(schema, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):  # not plain JSON (e.g. YAML's integer keys): the check says what is wrong
        return None


def _remember(key: str | None) -> None:
    if key is None:
        return
    _VALID_SCHEMAS[key] = None
    if len(_VALID_SCHEMAS) > MAX_VALID_SCHEMAS:
        del _VALID_SCHEMAS[next(iter(_VALID_SCHEMAS))]


def trust_schemas(schemas: Iterable[dict[str, Any] | None]) -> None:
    """Take ``schemas`` as valid without checking them: they were checked before they were stored."""
    for schema in schemas:
        if schema is not None and shape(schema, sys.maxsize, MAX_SCHEMA_DEPTH)[1] <= MAX_SCHEMA_DEPTH:
            _remember(_schema_key(schema))


def check_json_schema(schema: dict[str, Any] | None, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and the rule if ``schema`` is not a valid JSON Schema (2020-12), or if
    it nests more than ``MAX_SCHEMA_DEPTH`` deep (checking it recurses once per level)."""
    if schema is None:
        return
    if shape(schema, sys.maxsize, MAX_SCHEMA_DEPTH)[1] > MAX_SCHEMA_DEPTH:
        raise ValueError(f"{where} nests more than {MAX_SCHEMA_DEPTH} levels deep; flatten it (use $defs and $ref)")
    key = _schema_key(schema)
    if key is not None and key in _VALID_SCHEMAS:
        return
    try:
        Draft202012Validator.check_schema(schema)
    except RecursionError:
        raise ValueError(f"{where} refers to itself too deeply to be checked") from None
    except SchemaError as exc:
        location = "/".join(str(p) for p in exc.path) or "(root)"
        raise ValueError(f"{where} is not a valid JSON Schema: at {location}: {exc.message}") from None
    _remember(key)


class Published(BaseModel):
    """What every published ``name@version`` shares (tools and workflows): never changes once registered, except
    the ``deprecated`` flag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    if TYPE_CHECKING:  # declared by each kind, in its own order (error messages list fields in that order)
        name: str
        version: str
        deprecated: bool

    @field_validator("version", check_fields=False)
    @classmethod
    def _semver(cls, value: str) -> str:
        Version.parse(value)
        return value

    @field_validator("input_schema", "output_schema", check_fields=False)
    @classmethod
    def _schema(cls, value: dict[str, Any] | None, info: Any) -> dict[str, Any] | None:
        check_json_schema(value, info.field_name)
        return value

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def parsed_version(self) -> Version:
        return Version.parse(self.version)

    def definition(self) -> dict[str, Any]:
        """The immutable part of the spec, as JSON data (everything but ``deprecated``)."""
        return self.model_dump(mode="json", exclude={"deprecated"})

    def definition_hash(self) -> str:
        canonical = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def differences(self, other: Published) -> list[str]:
        """Names of the immutable fields whose values differ between two specs."""
        mine, theirs = self.definition(), other.definition()
        return sorted(key for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key))


class ToolSpec(Published):
    """One published version of a tool."""

    name: str = Field(pattern=NAME_PATTERN)
    version: str
    description: str = ""
    provider: Provider
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    idempotent: bool = Field(
        False, description="Safe to invoke again after a crash; non-idempotent calls are never re-run automatically."
    )
    cost: float = Field(0.0, ge=0, description="Cost charged per call, in the run's budget unit.")
    timeout_s: float | None = Field(None, gt=0, description="Default per-attempt timeout.")
    retry: RetryPolicy | None = None
    tags: tuple[str, ...] = ()
    breaker: BreakerSettings | Literal[False] | None = Field(
        None, description="Its circuit breaker's settings (default: the server's `[breaker]`), or false for none."
    )
    schema_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="An imported MCP tool's pinned hash of its schemas: a call to a server serving other schemas "
        "is refused.",
    )
    deprecated: bool = False

    def definition(self) -> dict[str, Any]:
        """As ``Published.definition``; fields added since a version was first published are left out while
        unset, so that its hash does not change."""
        data = super().definition()
        for added in _ADDED_FIELDS:
            if data.get(added) is None:
                data.pop(added, None)
        return data


_ADDED_FIELDS = ("schema_sha256", "breaker")


def is_valid_name(name: str) -> bool:
    return _NAME_RE.match(name) is not None
