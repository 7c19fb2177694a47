"""Registry files: TOML, YAML or JSON documents declaring tools, workflows and downstream MCP servers.

A file holds a list of tools (``[[tool]]`` in TOML; ``tool`` or ``tools`` in YAML/JSON), a list of workflows
(``[[workflow]]``; ``workflow`` or ``workflows``) and a list of servers (``[[server]]``; ``server`` or
``servers``). A document whose top level is itself a workflow (it has
``name``, ``version`` and ``step``) declares that one workflow.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from registry.errors import RegistryFileError
from registry.models import McpProvider, ToolSpec
from registry.servers import ServerSpec
from registry.triggers import TriggerSpec
from registry.workflows import WorkflowSpec

__all__ = ["RegistryFile", "WorkflowSpec", "load_registry_file", "parse_registry_text"]

Format = Literal["toml", "yaml", "json"]

_SUFFIXES: dict[str, Format] = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_TOOL_KEYS = ("tool", "tools")
_WORKFLOW_KEYS = ("workflow", "workflows")
_SERVER_KEYS = ("server", "servers")
_TRIGGER_KEYS = ("trigger", "triggers")
_ALLOWED_TOP = (*_TOOL_KEYS, *_WORKFLOW_KEYS, *_SERVER_KEYS, *_TRIGGER_KEYS)
_SINGLE_WORKFLOW_KEYS = ("name", "version", "step")

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class RegistryFile:
    """The validated contents of one registry file.

    Attributes:
        source: Where the contents came from (the path, for files).
        tools: Tool specs in file order.
        workflows: Workflow specs in file order.
        servers: Downstream MCP servers in file order.
    """

    source: str
    tools: tuple[ToolSpec, ...]
    workflows: tuple[WorkflowSpec, ...]
    servers: tuple[ServerSpec, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()


def load_registry_file(path: str | os.PathLike[str]) -> RegistryFile:
    """Read and validate a registry file; the format comes from the suffix.

    Args:
        path: A ``.toml``, ``.yaml``/``.yml`` or ``.json`` file.

    Returns:
        The file's tools and workflows.

    Raises:
        RegistryFileError: The file cannot be read, has another suffix, does not parse, or an entry is invalid.
    """
    source = os.fspath(path)
    suffix = Path(source).suffix.lower()
    fmt = _SUFFIXES.get(suffix)
    if fmt is None:
        allowed = ", ".join(_SUFFIXES)
        got = f"{suffix!r}" if suffix else "no suffix"
        raise RegistryFileError(source, f"unsupported file type ({got}); a registry file must end in {allowed}")
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryFileError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise RegistryFileError(source, f"cannot read the file: {exc.strerror or exc}") from None
    return parse_registry_text(text, fmt, source)


def parse_registry_text(text: str, fmt: Format, source: str) -> RegistryFile:
    """Parse and validate registry file contents.

    Args:
        text: The document.
        fmt: Its format.
        source: A label for error messages, usually the path.

    Returns:
        The document's tools and workflows.

    Raises:
        RegistryFileError: The text does not parse or an entry is invalid. The message names every problem:
            the entry (kind, index and name), the field, and what is allowed.
    """
    data = _load(text, fmt, source)
    if data is None:  # an empty YAML document
        data = {}
    if not isinstance(data, dict):
        raise RegistryFileError(
            source, f"the top level must be a mapping with any of {', '.join(_ALLOWED_TOP)}, not {_kind(data)}"
        )

    problems: list[str] = []
    collections = {key for key in data if key in _ALLOWED_TOP}
    if not collections and any(key in data for key in _SINGLE_WORKFLOW_KEYS):
        workflows = _validate_entries(WorkflowSpec, [("workflow", data)], "workflow", problems)
        tools: list[tuple[str, ToolSpec]] = []
        servers: list[tuple[str, ServerSpec]] = []
        triggers: list[tuple[str, TriggerSpec]] = []
    else:
        unknown = [key for key in data if key not in _ALLOWED_TOP]
        if unknown:
            problems.append(
                f"unknown top-level key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}; "
                f"allowed: {', '.join(_ALLOWED_TOP)} (or a single workflow with {', '.join(_SINGLE_WORKFLOW_KEYS)})"
            )
        tools = _validate_entries(ToolSpec, _entries(data, _TOOL_KEYS, problems), "tool", problems)
        workflows = _validate_entries(WorkflowSpec, _entries(data, _WORKFLOW_KEYS, problems), "workflow", problems)
        servers = _validate_entries(ServerSpec, _entries(data, _SERVER_KEYS, problems), "server", problems)
        triggers = _validate_entries(TriggerSpec, _entries(data, _TRIGGER_KEYS, problems), "trigger", problems)

    problems.extend(_duplicates("tool", tools))
    problems.extend(_duplicates("workflow", workflows))
    names = [spec.name for _, spec in servers]
    problems.extend(f"server {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1}))
    names = [spec.name for _, spec in triggers]
    problems.extend(f"trigger {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1}))
    if problems:
        if len(problems) == 1:
            raise RegistryFileError(source, problems[0])
        listing = "\n".join(f"  - {p}" for p in problems)
        raise RegistryFileError(source, f"{len(problems)} problems:\n{listing}")
    return RegistryFile(
        source=source,
        tools=tuple(spec for _, spec in tools),
        workflows=tuple(spec for _, spec in workflows),
        servers=tuple(spec for _, spec in servers),
        triggers=tuple(spec for _, spec in triggers),
    )


def mcp_servers_used(tools: tuple[ToolSpec, ...] | list[ToolSpec]) -> dict[str, str]:
    """The servers ``tools`` are served by, each with the first tool naming it."""
    used: dict[str, str] = {}
    for spec in tools:
        if isinstance(spec.provider, McpProvider):
            used.setdefault(spec.provider.server, spec.ref)
    return used


def _load(text: str, fmt: str, source: str) -> Any:
    if fmt == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegistryFileError(source, f"invalid TOML: {exc}") from None
    if fmt == "yaml":
        import yaml  # only for YAML files: most registries are TOML or JSON

        try:
            return yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            what = exc.problem or "syntax error"
            if exc.context:
                what += f" ({exc.context})"
            raise RegistryFileError(source, f"invalid YAML{where}: {what}") from None
        except yaml.YAMLError as exc:
            raise RegistryFileError(source, f"invalid YAML: {' '.join(str(exc).split())}") from None
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryFileError(
                source, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
    raise RegistryFileError(source, f"unsupported format {fmt!r}; allowed: toml, yaml, json")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({_short(value)})"


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _entries(data: dict[Any, Any], keys: tuple[str, str], problems: list[str]) -> list[tuple[str, Any]]:
    """The entries under either spelling of a collection key, each labelled ``key[index]`` for messages."""
    present = [key for key in keys if key in data]
    if len(present) > 1:
        problems.append(f"use either {keys[0]!r} or {keys[1]!r}, not both")
    entries: list[tuple[str, Any]] = []
    for key in present:
        value = data[key]
        if not isinstance(value, list):
            # In TOML, [tool] (one table) instead of [[tool]] (array of tables) is the usual cause.
            problems.append(f"{key!r} must be a list of {keys[0]} entries ([[{keys[0]}]] in TOML), not {_kind(value)}")
            continue
        entries.extend((f"{key}[{index}]", entry) for index, entry in enumerate(value))
    return entries


def _validate_entries(
    model: type[_M], entries: list[tuple[str, Any]], kind: str, problems: list[str]
) -> list[tuple[str, _M]]:
    """Validate each entry; collect one problem line per error. Returns ``(label, spec)`` of the valid ones."""
    valid: list[tuple[str, _M]] = []
    for label, entry in entries:
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be a table/object with the {kind}'s fields, not {_kind(entry)}")
            continue
        name = entry.get("name")
        named = f"{label} {name!r}" if isinstance(name, str) and name else label
        try:
            valid.append((label, model.model_validate(entry)))
        except ValidationError as exc:
            problems.extend(f"{named}: {_describe(model, error)}" for error in exc.errors())
    return valid


def _duplicates(kind: str, specs: list[tuple[str, ToolSpec]] | list[tuple[str, WorkflowSpec]]) -> Iterator[str]:
    seen: dict[tuple[str, str], str] = {}
    for label, spec in specs:
        key = (spec.name, spec.version)
        if key in seen:
            yield (
                f"{kind} {key[0]}@{key[1]} is defined twice ({seen[key]} and {label}); "
                "a published name@version is immutable, give one a new version"
            )
        else:
            seen[key] = label


# --- pydantic errors as one readable line each ---------------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, Annotated and containers)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    found: list[type[BaseModel]] = []
    if origin is not None:  # unions, Optional and containers: look inside
        for arg in get_args(annotation):
            found.extend(m for m in _models_in(arg) if m not in found)
    return found


def _tags(models: list[type[BaseModel]], discriminator: str) -> list[str]:
    tags: list[str] = []
    for model in models:
        field = model.model_fields.get(discriminator)
        if field is not None and get_origin(field.annotation) is Literal:
            tags.extend(str(arg) for arg in get_args(field.annotation))
    return tags


@dataclass
class _Walk:
    path: str
    parent: type[BaseModel] | None  # the model whose field the last location element names
    union: list[type[BaseModel]]  # models of the last field, if it is a model-valued field
    discriminator: str | None


def _walk(model: type[BaseModel], loc: tuple[int | str, ...]) -> _Walk:
    """Render a pydantic location as ``a.b[0].c``, dropping discriminator tags, and find the models along it."""
    path = ""
    current: type[BaseModel] | None = model
    parent: type[BaseModel] | None = model
    union: list[type[BaseModel]] = []
    discriminator: str | None = None
    i = 0
    while i < len(loc):
        item = loc[i]
        i += 1
        if isinstance(item, int):
            path += f"[{item}]"
            continue
        path += f".{item}" if path else item
        parent, union, discriminator = current, [], None
        field = current.model_fields.get(item) if current is not None else None
        if field is None:
            current = None
            continue
        union = _models_in(field.annotation)
        disc = field.discriminator
        discriminator = disc if isinstance(disc, str) else None
        if discriminator is not None and i < len(loc) and isinstance(loc[i], str):
            tag = str(loc[i])
            i += 1
            matches = [m for m in union if tag in _tags([m], discriminator)]
            current = matches[0] if matches else None
        else:
            current = union[0] if len(union) == 1 else None
    return _Walk(path, parent, union, discriminator)


def _describe(model: type[BaseModel], error: ErrorDetails) -> str:
    walk = _walk(model, tuple(error["loc"]))
    path = walk.path or "(entry)"
    kind = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found") and walk.discriminator:
        supported = ", ".join(_tags(walk.union, walk.discriminator)) or "none"
        got = f"{ctx.get('tag')!r} is not supported" if kind == "union_tag_invalid" else "missing"
        return f"{path}.{walk.discriminator}: {got}; supported: {supported}"
    if kind == "extra_forbidden":
        allowed = f" (allowed: {', '.join(walk.parent.model_fields)})" if walk.parent is not None else ""
        return f"{path}: unknown field{allowed}"
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        field = walk.path.rsplit(".", 1)[-1]
        if field and message.startswith(f"{field} "):
            # The validator already names its field ("input_schema is not ..."): say it once, with the full path.
            return f"{path}{message[len(field) :]}"
        return f"{path}: {message}"
    value = error.get("input")
    if kind != "missing" and (value is None or isinstance(value, (str, int, float, bool))):
        message += f" (got {_short(value)})"
    return f"{path}: {message}"
