"""Settings: one frozen object from ``podium.toml`` and ``PODIUM_*`` environment variables.

Precedence, lowest first: defaults, the config file (``--config``, else ``PODIUM_CONFIG``, else ``./podium.toml``
when it exists), environment variables (nested with ``__``: ``PODIUM_LIMITS__MAX_FAN_OUT=5``), then ``--db``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patterns import Limits
from registry.models import BreakerSettings

PREFIX = "PODIUM_"
TEST_PREFIX = "PODIUM_TEST_"  # the test suite's variables (PODIUM_TEST_POSTGRES_URL), not settings


EventLoop = Literal["auto", "uvloop", "asyncio"]


class ConfigError(Exception):
    """The settings could not be read: names the source and the field."""


def default_database_url() -> str:
    """A SQLite file in the user data directory (created on first use)."""
    return f"sqlite:///{Path(platformdirs.user_data_dir('podium')) / 'podium.db'}"


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    roles: tuple[Literal["supervisor", "approver", "emitter", "admin"], ...] = ("supervisor",)
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of the bearer token.")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    database_url: str = Field(default_factory=default_database_url)
    durability: Literal["normal", "full"] = "normal"
    limits: Limits = Limits()
    breaker: BreakerSettings = BreakerSettings()
    """Circuit breakers of tools whose spec sets none (``[breaker]``; ``PODIUM_BREAKER__OPEN_S=60``)."""
    principal: tuple[Principal, ...] = ()
    registry: tuple[str, ...] = ()
    lease_s: float = Field(15.0, gt=0, description="A run's lease; a replica that dies holds its runs this long.")
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="On SIGTERM/SIGINT, how long tool calls in flight may take to finish."
    )
    default_wait_s: float = Field(
        20.0, ge=0, le=50, description="How long a run-starting call waits for its run when the call does not say."
    )
    max_result_bytes: int = Field(
        262_144, ge=1_024, le=262_144, description="The largest run output a result carries; larger: a pointer."
    )
    sync_tool_threads: int = Field(
        8, ge=1, le=256, description="Calls of sync python tools that run at once, each in a worker thread."
    )
    max_request_bytes: int = Field(
        2_097_152, ge=65_536, description="Size of one MCP request (stdio line or HTTP body); larger ones are refused."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines on stderr: text, or one JSON object per line with run_id and trace_id."
    )
    event_loop: EventLoop = Field(
        "auto", description="The event loop of podium's commands: uvloop where installed (auto), uvloop, or asyncio."
    )

    @classmethod
    def load(
        cls,
        config: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        database_url: str | None = None,
    ) -> Self:
        """Build the settings from a config file, the environment and an explicit database URL."""
        environ = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        path = config or environ.get(f"{PREFIX}CONFIG")
        if path is None and Path("podium.toml").is_file():
            path = "podium.toml"
        if path is not None:
            data = _read_toml(Path(path))
        _merge(data, _from_env(environ))
        if database_url:
            data["database_url"] = database_url
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
            )
            source = f"{path} and PODIUM_* variables" if path else "PODIUM_* variables"
            raise ConfigError(f"invalid settings (from {source}): {problems}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _value(text: str) -> Any:
    """Environment values: JSON when they parse as JSON (numbers, lists, booleans), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in environ.items():
        if not key.startswith(PREFIX) or key == f"{PREFIX}CONFIG" or key.startswith(TEST_PREFIX):
            continue
        parts = key[len(PREFIX) :].lower().split("__")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        value = _value(text)
        if parts[-1] in ("registry", "allowed_tools") and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        target[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
