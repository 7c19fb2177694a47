"""Registry errors.

Tree::

    RegistryError
    ├── InvalidToolSpec        a tool definition that cannot be registered (bad schema, bad version, ...)
    ├── RegistryFileError      a registry file that cannot be read or parsed
    ├── InvalidReference       a tool reference (``name@spec``) that does not parse
    ├── ToolNotFound           no tool of that name is registered
    ├── NoMatchingVersion      versions exist, but none satisfies the reference
    └── ToolConflict           ``name@version`` is already registered with a different definition
"""

from __future__ import annotations

from collections.abc import Sequence


class RegistryError(Exception):
    """Root of the registry's errors. ``message`` is written for the person or model that must act on it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidToolSpec(RegistryError):
    """A tool definition is malformed: the message names the tool, the field and what is allowed."""


class RegistryFileError(RegistryError):
    """A registry file could not be read, parsed or validated."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class InvalidReference(RegistryError):
    """A tool reference does not parse."""


class ToolNotFound(RegistryError):
    """No tool with this name exists."""

    def __init__(self, name: str, known: Sequence[str], suggestions: Sequence[str] = ()) -> None:
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        listing = ", ".join(known) if known else "none are registered"
        super().__init__(f"unknown tool {name!r}{hint} (registered tools: {listing})")
        self.name = name
        self.known = list(known)


class NoMatchingVersion(RegistryError):
    """The tool exists but no version satisfies the reference. The message lists the versions that exist."""

    def __init__(self, name: str, spec: str, versions: Sequence[str], reason: str = "") -> None:
        listing = ", ".join(versions) if versions else "none"
        why = f" ({reason})" if reason else ""
        super().__init__(f"no version of {name!r} satisfies {spec!r}{why}; versions: {listing}")
        self.name = name
        self.spec = spec
        self.versions = list(versions)


class ToolConflict(RegistryError):
    """``name@version`` is immutable: it is already registered with a different definition."""

    def __init__(self, name: str, version: str, differences: Sequence[str]) -> None:
        super().__init__(
            f"{name}@{version} is already registered with a different definition "
            f"(differs in: {', '.join(differences)}); published versions are immutable, register a new version"
        )
        self.name = name
        self.version = version
        self.differences = list(differences)
