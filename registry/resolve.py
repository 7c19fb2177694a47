"""Tool references (``name@spec``) and resolving them to one registered version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from registry.errors import InvalidReference, NoMatchingVersion
from registry.models import is_valid_name
from registry.semver import Version, VersionRange

__all__ = ["ToolRef", "parse_ref", "resolve_version"]

_EXPECTED_REF = "expected NAME or NAME@SPEC where SPEC is 1.2.3, ^1.2, ~1.2.3, >=1.0,<2 or latest"
_LATEST_SPECS = ("", "latest")


@dataclass(frozen=True)
class ToolRef:
    """A parsed tool reference.

    Attributes:
        name: The tool name.
        spec: The version range; its ``str()`` is the spec text as written (``""`` when absent).
    """

    name: str
    spec: VersionRange

    def __str__(self) -> str:
        text = str(self.spec)
        return self.name if text.strip() in _LATEST_SPECS else f"{self.name}@{text}"


def parse_ref(ref: str) -> ToolRef:
    """Parse ``NAME`` or ``NAME@SPEC``.

    Args:
        ref: For example ``extract-invoice``, ``extract-invoice@^1.2`` or ``extract-invoice@>=1.0,<2``.

    Returns:
        The reference; ``NAME`` alone means the newest non-prerelease, non-deprecated version.

    Raises:
        InvalidReference: The name or the spec is malformed; the message says why and what is expected.
    """

    def invalid(reason: str) -> InvalidReference:
        return InvalidReference(f"{ref!r} is not a valid tool reference: {reason}; {_EXPECTED_REF}")

    if not isinstance(ref, str):
        raise invalid("not a string")
    name, at, spec_text = ref.strip().partition("@")
    if not name:
        raise invalid("the tool name is empty")
    if not is_valid_name(name):
        raise invalid(
            f"tool name {name!r} must start with a letter or digit and contain only letters, digits, '.', '_' or "
            "'-' (at most 128 characters)"
        )
    if at and not spec_text.strip():
        raise invalid("the version spec after '@' is empty (omit '@' or write @latest)")
    try:
        spec = VersionRange.parse(spec_text)
    except ValueError as exc:
        # The range's own message lists the allowed spec forms; keep only the reason before it.
        reason = str(exc).split("; allowed forms:", 1)[0]
        raise invalid(reason) from None
    return ToolRef(name, spec)


def _annotate(text: str, version: Version, deprecated: bool) -> str:
    notes = [note for note, flag in (("prerelease", version.is_prerelease), ("deprecated", deprecated)) if flag]
    return f"{text} ({', '.join(notes)})" if notes else text


def resolve_version(ref: ToolRef, candidates: Sequence[tuple[str, bool]]) -> str:
    """Pick the version a reference resolves to.

    Args:
        ref: The parsed reference.
        candidates: ``(version_text, deprecated)`` for every registered version of ``ref.name``; not empty
            (the caller raises ``ToolNotFound`` when the tool has no versions).

    Returns:
        The text of the highest version (by semver precedence) in the range. Deprecated versions are skipped
        unless the range pins one exact version.

    Raises:
        NoMatchingVersion: No candidate qualifies; the message lists every version, highest first, and why
            nearby versions were rejected when that is the problem.
        ValueError: A candidate is not a semantic version (the registry never stores such a version).
    """
    parsed = [(Version.parse(text), text, deprecated) for text, deprecated in candidates]
    # Equal precedence (differing only in build metadata) falls back to the text so the choice is stable.
    parsed.sort(key=lambda item: (item[0].sort_key(), item[1]), reverse=True)

    spec = ref.spec
    matching = [item for item in parsed if spec.contains(item[0])]
    usable = matching if spec.is_exact else [item for item in matching if not item[2]]
    if usable:
        return usable[0][1]

    reason = ""
    if matching:
        listed = ", ".join(text for _, text, _ in matching)
        reason = (
            f"the matching versions are deprecated ({listed}); pin one exactly to use it, "
            f"e.g. {ref.name}@{matching[0][1]}"
        )
    elif any(spec.contains(version, include_prerelease=True) for version, _, _ in parsed):
        reason = "only prereleases match; name a prerelease in the range to allow them"
        prereleases = [text for version, text, _ in parsed if spec.contains(version, include_prerelease=True)]
        reason += f", e.g. {ref.name}@{prereleases[0]}"
    spec_text = str(spec).strip() or "latest"
    versions = [_annotate(text, version, deprecated) for version, text, deprecated in parsed]
    raise NoMatchingVersion(ref.name, spec_text, versions, reason)
