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

import difflib
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

    def __init__(self, name: str, known: Sequence[str]) -> None:
        suggestions = closest(name, known)
        if suggestions:
            hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?"
        elif known:
            hint = f"; {len(known)} tool(s) are registered: find_tools or `podium tools list` lists them"
        else:
            hint = "; no tools are registered"
        super().__init__(f"unknown tool {name!r}{hint}")
        self.name = name
        self.suggestions = suggestions


class WorkflowNotFound(RegistryError):
    """No workflow with this name exists."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        suggestions = closest(name, known)
        if suggestions:
            hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?"
        elif known:
            hint = f"; {len(known)} workflow(s) are registered: find_tools or `podium workflows list` lists them"
        else:
            hint = "; no workflows are registered (`podium workflows add FILE` registers them)"
        super().__init__(f"unknown workflow {name!r}{hint}")
        self.name = name
        self.suggestions = suggestions


def closest(name: str, known: Sequence[str], n: int = 3) -> list[str]:
    """At most ``n`` of ``known`` that look like ``name``: close spellings first, then names that contain it (or
    that it contains), e.g. ``invoice`` -> ``extract-invoice``."""
    folded = name.casefold()
    found = difflib.get_close_matches(folded, known, n=n)
    for candidate in known:
        if len(found) >= n:
            break
        if candidate not in found and len(folded) >= 3 and (folded in candidate or candidate in folded):
            found.append(candidate)
    return found


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
