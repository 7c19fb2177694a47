"""Semantic Versioning 2.0.0: versions, precedence and version ranges (npm-style specs).

Only the standard library is used. ``Version`` is one published version string; ``VersionRange`` is the ``SPEC`` part
of a tool reference (``name@SPEC``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["Version", "VersionRange"]

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_VERSION_RE = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)
_PRE_ID_RE = re.compile(_PRE_ID)
_BUILD_RE = re.compile(rf"{_BUILD_ID}(?:\.{_BUILD_ID})*")

_EXPECTED = "expected MAJOR.MINOR.PATCH such as 1.2.0, optionally -prerelease and +build"

# One prerelease identifier's sort key: numeric identifiers (0, n, "") sort below alphanumeric ones (1, 0, s).
_IdKey = tuple[int, int, str]
SortKey = tuple[int, int, int, int, tuple[_IdKey, ...]]


def _identifier(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _diagnose(text: str) -> str:
    """A specific reason why ``text`` is not a version, or ``""`` when the generic message says it all."""
    core, _, _ = text.partition("+")
    core, _, pre = core.partition("-")
    for part in core.split("."):
        if part.isdigit() and len(part) > 1 and part.startswith("0"):
            return f"{part!r} has a leading zero"
    if pre:
        for ident in pre.split("."):
            if ident.isdigit() and len(ident) > 1 and ident.startswith("0"):
                return f"prerelease identifier {ident!r} has a leading zero"
            if not ident:
                return "empty prerelease identifier"
    return ""


@dataclass(frozen=True)
class Version:
    """A Semantic Versioning 2.0.0 version.

    Equality (``==``, hashing) is identity of the published string: ``1.0.0+a`` and ``1.0.0+b`` are different
    versions. Ordering (``<``, ``<=``, ``>``, ``>=``, ``sort_key``) is semver precedence, which ignores build
    metadata, so two versions can be neither ``<`` nor ``>`` each other and still be unequal.

    Attributes:
        major: MAJOR number.
        minor: MINOR number.
        patch: PATCH number.
        prerelease: Dot-separated prerelease identifiers; numeric ones are ``int``.
        build: Build metadata without the leading ``+`` (``""`` when absent).
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...] = ()
    build: str = ""

    def __post_init__(self) -> None:
        for label, number in (("major", self.major), ("minor", self.minor), ("patch", self.patch)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ValueError(f"{label} must be a non-negative integer, got {number!r}")
        normalized: list[str | int] = []
        for ident in self.prerelease:
            if isinstance(ident, bool) or not isinstance(ident, (int, str)):
                raise ValueError(f"prerelease identifier must be a str or int, got {ident!r}")
            if isinstance(ident, int):
                if ident < 0:
                    raise ValueError(f"numeric prerelease identifier must be non-negative, got {ident}")
                normalized.append(ident)
            elif _PRE_ID_RE.fullmatch(ident):
                normalized.append(_identifier(ident))
            else:
                raise ValueError(f"{ident!r} is not a valid prerelease identifier")
        if self.build and not _BUILD_RE.fullmatch(self.build):
            raise ValueError(f"{self.build!r} is not valid build metadata")
        # Numeric strings become ints so that a hand-built Version equals the parsed one.
        object.__setattr__(self, "prerelease", tuple(normalized))

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse a strict semantic version string.

        Args:
            text: For example ``1.2.3``, ``1.0.0-rc.1`` or ``2.0.0-beta.2+exp.sha.5114f85``.

        Returns:
            The parsed version.

        Raises:
            ValueError: ``text`` is not a semantic version; the message says what is expected.
        """
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a semantic version ({_EXPECTED})")
        match = _VERSION_RE.fullmatch(text)
        if match is None:
            detail = _diagnose(text)
            detail = f": {detail}" if detail else ""
            raise ValueError(f"{text!r} is not a semantic version{detail} ({_EXPECTED})")
        pre = match["pre"]
        return cls(
            int(match["major"]),
            int(match["minor"]),
            int(match["patch"]),
            tuple(_identifier(p) for p in pre.split(".")) if pre else (),
            match["build"] or "",
        )

    @property
    def is_prerelease(self) -> bool:
        """Whether the version has prerelease identifiers (``1.0.0-rc.1``)."""
        return bool(self.prerelease)

    def sort_key(self) -> SortKey:
        """A key whose natural ordering is semver precedence (build metadata ignored)."""
        ids = tuple((0, i, "") if isinstance(i, int) else (1, 0, i) for i in self.prerelease)
        # A release ranks above every prerelease of the same MAJOR.MINOR.PATCH.
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, ids)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(i) for i in self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() >= other.sort_key()


_Op = Literal[">=", ">", "<=", "<", "=", "!="]


@dataclass(frozen=True)
class _Comparator:
    """One primitive test. ``names_prerelease`` marks a prerelease version the user wrote (npm opt-in rule)."""

    op: _Op
    version: Version
    names_prerelease: bool = False

    def test(self, v: Version) -> bool:
        if self.op in ("=", "!="):
            # A build in the spec pins that exact published string; otherwise build metadata is ignored.
            same = v == self.version if self.version.build else v.sort_key() == self.version.sort_key()
            return same if self.op == "=" else not same
        key, bound = v.sort_key(), self.version.sort_key()
        if self.op == ">=":
            return key >= bound
        if self.op == ">":
            return key > bound
        if self.op == "<=":
            return key <= bound
        return key < bound

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


@dataclass(frozen=True)
class _Exclude:
    """``!=1.2`` excludes the whole half-open interval ``[low, high)``; it never opts in to prereleases."""

    low: Version
    high: Version

    def test(self, v: Version) -> bool:
        return not (self.low.sort_key() <= v.sort_key() < self.high.sort_key())

    def __str__(self) -> str:
        return f"!({self.low} - {self.high})"


_Test = _Comparator | _Exclude

_FORMS = (
    "allowed forms: latest or * (newest non-prerelease), 1.2.3 or =1.2.3 (exact), 1.2 or 1.2.x and 1 or 1.x "
    "(any in that minor/major), ^1.2.3 (compatible), ~1.2.3 (same minor), comparators >=1.0, >1.0, <=2, <2, "
    "!=1.3.0 joined by commas or spaces (AND), and alternatives joined by ||"
)
_TERM_RE = re.compile(r"(?P<op>>=|<=|!=|>|<|=|\^|~)?(?P<ver>.*)", re.DOTALL)
_PARTIAL_RE = re.compile(rf"(?P<a>{_NUM}|[xX*])(?:\.(?P<b>{_NUM}|[xX*])(?:\.(?P<c>{_NUM}|[xX*]))?)?")
_RELATIONS: dict[str, _Op] = {">=": ">=", ">": ">", "<=": "<=", "<": "<"}
_OPERATORS = frozenset({">=", "<=", "!=", ">", "<", "=", "^", "~"})
_WILDCARDS = frozenset({"x", "X", "*"})


class _SpecError(Exception):
    """Internal: the reason one term is malformed."""


def _floor(major: int, minor: int, patch: int) -> Version:
    return Version(major, minor, patch)


def _ceiling(major: int, minor: int, patch: int) -> Version:
    # X.Y.Z-0 is the lowest possible version with that core, so "< X.Y.Z-0" also excludes X.Y.Z's prereleases.
    return Version(major, minor, patch, (0,))


def _parse_partial(text: str) -> tuple[int | None, int | None, int | None]:
    match = _PARTIAL_RE.fullmatch(text)
    if match is None:
        raise _SpecError(_diagnose(text) or f"{text!r} is not a version")
    parts: list[int | None] = []
    wildcard = False
    for raw in (match["a"], match["b"], match["c"]):
        if raw is None or raw in _WILDCARDS:
            wildcard = True
            parts.append(None)
        elif wildcard:
            raise _SpecError(f"{text!r} has a number after a wildcard")
        else:
            parts.append(int(raw))
    return parts[0], parts[1], parts[2]


def _term(op: str, text: str) -> list[_Test]:
    """Translate one ``<op><version>`` term into primitive tests (an empty list matches any release)."""
    if text in _WILDCARDS:
        if op in ("", "="):
            return []
        raise _SpecError(f"{op!r} needs a version, not {text!r}")
    if not text:
        raise _SpecError(f"{op!r} needs a version after it" if op else "empty term")

    full: Version | None = None
    if _VERSION_RE.fullmatch(text):
        full = Version.parse(text)
    elif "-" in text or "+" in text:
        # Prerelease and build only make sense on a full MAJOR.MINOR.PATCH.
        detail = _diagnose(text) or f"{text!r} is not a full version (prerelease/build need MAJOR.MINOR.PATCH)"
        raise _SpecError(detail)

    if full is not None:
        major, minor, patch = full.major, full.minor, full.patch
        low = _Comparator(">=", full, full.is_prerelease)
        if op in ("", "="):
            return [_Comparator("=", full, full.is_prerelease)]
        if op in _RELATIONS:
            return [_Comparator(_RELATIONS[op], full, full.is_prerelease)]
        if op == "!=":
            return [_Comparator("!=", full)]
        if op == "~":
            return [low, _Comparator("<", _ceiling(major, minor + 1, 0))]
        # Caret: the leftmost non-zero component may not change.
        if major:
            high = _ceiling(major + 1, 0, 0)
        elif minor:
            high = _ceiling(0, minor + 1, 0)
        else:
            high = _ceiling(0, 0, patch + 1)
        return [low, _Comparator("<", high)]

    # A third component here is always a wildcard: three numbers would have parsed as a full version.
    a, b, _ = _parse_partial(text)
    if a is None:
        if op in ("", "="):
            return []
        raise _SpecError(f"{op!r} needs a version, not {text!r}")
    # A partial version X or X.Y stands for the interval [floor, next) of everything it covers.
    floor = _floor(a, b or 0, 0)
    nxt = _ceiling(a + 1, 0, 0) if b is None else _ceiling(a, b + 1, 0)
    if op in ("", "=", "~"):
        return [_Comparator(">=", floor), _Comparator("<", nxt)]
    if op == "^":
        if a or b is None:
            return [_Comparator(">=", floor), _Comparator("<", _ceiling(a + 1, 0, 0))]
        return [_Comparator(">=", floor), _Comparator("<", _ceiling(0, b + 1, 0))]
    if op == ">=":
        return [_Comparator(">=", floor)]
    if op == ">":
        return [_Comparator(">=", _floor(nxt.major, nxt.minor, nxt.patch))]
    if op == "<":
        return [_Comparator("<", _ceiling(floor.major, floor.minor, floor.patch))]
    if op == "<=":
        return [_Comparator("<", nxt)]
    return [_Exclude(floor, nxt)]  # "!="


def _terms(part: str) -> list[tuple[str, str]]:
    """Split one AND-set into ``(operator, version)`` terms; an operator may be separated from its version."""
    terms: list[tuple[str, str]] = []
    for chunk in part.split(","):
        words = chunk.split()
        if not words:
            raise _SpecError("empty term between commas")
        pending = ""
        for word in words:
            if word == "-":
                raise _SpecError("hyphen ranges (1.0.0 - 2.0.0) are not supported; write >=1.0.0 <=2.0.0")
            if word in _OPERATORS:
                if pending:
                    raise _SpecError(f"operator {pending!r} is followed by another operator {word!r}")
                pending = word
                continue
            match = _TERM_RE.fullmatch(word)
            assert match is not None  # the pattern accepts any text
            op, ver = match["op"] or "", match["ver"]
            if op and ver[:1] in ("<", ">", "=", "!", "^", "~"):
                raise _SpecError(f"{word!r} has more than one operator")
            if pending:
                if op:
                    raise _SpecError(f"operator {pending!r} is followed by another operator {op!r}")
                op, pending = pending, ""
            terms.append((op, ver))
        if pending:
            raise _SpecError(f"operator {pending!r} needs a version after it")
    return terms


class VersionRange:
    """A set of versions, written as the ``SPEC`` of ``name@SPEC``.

    Forms (npm semantics): ``""``/``latest``/``*`` (any release), ``1.2.3`` or ``=1.2.3`` (exact, prereleases
    too), ``1.2``/``1.2.x`` and ``1``/``1.x`` (partial), ``^1.2.3`` (caret), ``~1.2.3`` (tilde), comparators
    ``>=``, ``>``, ``<=``, ``<``, ``!=`` with full or partial versions joined by commas and/or spaces (AND), and
    ``||`` between such sets (OR).

    Prerelease rule: a prerelease version is in the range only if the AND-set testing it names a prerelease of
    the same MAJOR.MINOR.PATCH, so ``^1.2.3-beta.1`` admits ``1.2.3-beta.2`` but not ``1.2.4-beta.1``.

    Equality and hashing compare the spec text, which ``str()`` gives back unchanged.
    """

    __slots__ = ("_sets", "_text")

    _sets: tuple[tuple[_Test, ...], ...]
    _text: str

    def __init__(self, spec: str) -> None:
        """Parse ``spec``; see ``parse``."""
        self._text = spec
        self._sets = self._compile(spec)

    @classmethod
    def parse(cls, spec: str) -> VersionRange:
        """Parse a version spec.

        Args:
            spec: For example ``^1.2``, ``~1.2.3``, ``>=1.0,<2``, ``1.2.3-rc.1`` or ``latest``.

        Returns:
            The range.

        Raises:
            ValueError: ``spec`` is malformed; the message names it and lists the allowed forms.
        """
        return cls(spec)

    @staticmethod
    def _compile(spec: str) -> tuple[tuple[_Test, ...], ...]:
        if not isinstance(spec, str):
            raise ValueError(f"{spec!r} is not a version spec: not a string; {_FORMS}")
        stripped = spec.strip()
        if stripped in ("", "latest"):
            return ((),)
        sets: list[tuple[_Test, ...]] = []
        try:
            for part in stripped.split("||"):
                if not part.strip():
                    raise _SpecError("empty alternative around '||'")
                tests: list[_Test] = []
                for op, ver in _terms(part):
                    tests.extend(_term(op, ver))
                sets.append(tuple(tests))
        except _SpecError as exc:
            raise ValueError(f"{spec!r} is not a valid version spec: {exc}; {_FORMS}") from None
        return tuple(sets)

    @property
    def is_exact(self) -> bool:
        """Whether the range pins one full version (``1.2.3``, ``=1.2.3``, ``1.2.3-rc.1``)."""
        if len(self._sets) != 1 or len(self._sets[0]) != 1:
            return False
        only = self._sets[0][0]
        return isinstance(only, _Comparator) and only.op == "="

    @property
    def is_any(self) -> bool:
        """Whether the range accepts every release (``""``, ``latest``, ``*``)."""
        return any(not tests for tests in self._sets)

    def contains(self, v: Version, *, include_prerelease: bool = False) -> bool:
        """Whether ``v`` is in the range.

        Args:
            v: The version to test.
            include_prerelease: Ignore the prerelease opt-in rule and test prereleases like releases.

        Returns:
            ``True`` if some ``||`` alternative accepts ``v``.
        """
        for tests in self._sets:
            if not all(t.test(v) for t in tests):
                continue
            if not v.is_prerelease or include_prerelease:
                return True
            core = (v.major, v.minor, v.patch)
            if any(
                isinstance(t, _Comparator)
                and t.names_prerelease
                and (t.version.major, t.version.minor, t.version.patch) == core
                for t in tests
            ):
                return True
        return False

    def __contains__(self, v: object) -> bool:
        return isinstance(v, Version) and self.contains(v)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        canonical = " || ".join(" ".join(str(t) for t in tests) or "*" for tests in self._sets)
        return f"VersionRange({self._text!r}: {canonical})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionRange):
            return NotImplemented
        return self._text == other._text

    def __hash__(self) -> int:
        return hash(self._text)
