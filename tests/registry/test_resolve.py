from __future__ import annotations

import pytest

from registry.errors import InvalidReference, NoMatchingVersion, RegistryError
from registry.resolve import ToolRef, parse_ref, resolve_version
from registry.semver import VersionRange

VERSIONS: list[tuple[str, bool]] = [
    ("0.9.0", True),
    ("1.0.0", False),
    ("1.2.0", False),
    ("1.10.0", False),
    ("2.0.0-rc.1", False),
    ("1.11.0", True),
]


def resolve(ref: str, candidates: list[tuple[str, bool]] = VERSIONS) -> str:
    return resolve_version(parse_ref(ref), candidates)


def no_match(ref: str, candidates: list[tuple[str, bool]] = VERSIONS) -> NoMatchingVersion:
    with pytest.raises(NoMatchingVersion) as info:
        resolve(ref, candidates)
    return info.value


# --- parse_ref ----------------------------------------------------------------------------------------------------


def test_a_bare_name_means_latest() -> None:
    ref = parse_ref("extract-invoice")
    assert ref.name == "extract-invoice"
    assert str(ref.spec) == ""
    assert str(ref) == "extract-invoice"


def test_the_spec_after_the_first_at_sign_is_parsed_and_kept_as_written() -> None:
    ref = parse_ref("extract-invoice@>=1.0, <2")
    assert ref == ToolRef("extract-invoice", VersionRange(">=1.0, <2"))
    assert str(ref) == "extract-invoice@>=1.0, <2"
    assert str(parse_ref("a.b_c-1@^1.2")) == "a.b_c-1@^1.2"


def test_an_explicit_latest_prints_as_the_bare_name() -> None:
    assert str(parse_ref("tool@latest")) == "tool"
    assert str(parse_ref("tool@*")) == "tool@*"


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_ref("  tool@1.2.3 ") == parse_ref("tool@1.2.3")


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("x@^^1", "'^^1' has more than one operator"),
        ("", "the tool name is empty"),
        ("@1.0.0", "the tool name is empty"),
        ("tool@", "the version spec after '@' is empty"),
        ("tool@ ", "the version spec after '@' is empty"),
        ("-tool", "tool name '-tool' must start with a letter or digit"),
        ("my tool", "tool name 'my tool' must start"),
        ("tool/x@1", "tool name 'tool/x' must start"),
        ("x" * 129, "at most 128 characters"),
        ("tool@1@2", "is not a version"),
        ("tool@v1", "'v1' is not a version"),
    ],
)
def test_malformed_references_are_rejected_with_the_reason_and_the_expected_form(ref: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_ref(ref)
    message = str(info.value)
    assert message.startswith(f"{ref!r} is not a valid tool reference: ")
    assert reason in message
    assert message.endswith("; expected NAME or NAME@SPEC where SPEC is 1.2.3, ^1.2, ~1.2.3, >=1.0,<2 or latest")
    assert isinstance(info.value, RegistryError)


def test_the_reference_error_message_reads_as_one_sentence() -> None:
    with pytest.raises(InvalidReference) as info:
        parse_ref("x@^^1")
    assert info.value.message == (
        "'x@^^1' is not a valid tool reference: '^^1' is not a valid version spec: '^^1' has more than one "
        "operator; expected NAME or NAME@SPEC where SPEC is 1.2.3, ^1.2, ~1.2.3, >=1.0,<2 or latest"
    )


# --- resolve_version ----------------------------------------------------------------------------------------------


def test_latest_is_the_highest_release_that_is_not_deprecated() -> None:
    assert resolve("tool") == "1.10.0"
    assert resolve("tool@latest") == "1.10.0"
    assert resolve("tool@*") == "1.10.0"


def test_precedence_not_text_order_or_input_order_picks_the_highest() -> None:
    assert resolve("tool", [("1.10.0", False), ("1.9.0", False), ("1.2.0", False)]) == "1.10.0"
    assert resolve("tool", [("1.2.0", False), ("1.10.0", False), ("1.9.0", False)]) == "1.10.0"


def test_ranges_pick_the_highest_match() -> None:
    assert resolve("tool@^1.0") == "1.10.0"
    assert resolve("tool@~1.2") == "1.2.0"
    assert resolve("tool@>=1.0,<1.5") == "1.2.0"
    assert resolve("tool@1.0.0") == "1.0.0"
    assert resolve("tool@<1.2 || 1.2.0") == "1.2.0"


def test_a_prerelease_is_only_chosen_when_the_range_names_one() -> None:
    assert resolve("tool@>=1.0") == "1.10.0"
    assert resolve("tool@>=2.0.0-rc.0") == "2.0.0-rc.1"
    assert resolve("tool@2.0.0-rc.1") == "2.0.0-rc.1"


def test_a_release_beats_its_prereleases() -> None:
    assert resolve("tool@^2.0.0-rc.1", [("2.0.0-rc.1", False), ("2.0.0", False), ("2.0.0-rc.2", False)]) == "2.0.0"


def test_deprecated_versions_are_skipped_by_ranges() -> None:
    assert resolve("tool@^1") == "1.10.0"
    assert no_match("tool@^0.9").versions[-1] == "0.9.0 (deprecated)"
    assert resolve("tool@<1.2") == "1.0.0"


def test_an_exact_pin_selects_a_deprecated_version() -> None:
    assert resolve("tool@0.9.0") == "0.9.0"
    assert resolve("tool@=1.11.0") == "1.11.0"


def test_a_deprecated_prerelease_can_be_pinned() -> None:
    assert resolve("tool@1.0.0-rc.1", [("1.0.0-rc.1", True)]) == "1.0.0-rc.1"


def test_equal_precedence_versions_resolve_deterministically() -> None:
    first = resolve("tool@1.0.0", [("1.0.0+a", False), ("1.0.0+b", False)])
    second = resolve("tool@1.0.0", [("1.0.0+b", False), ("1.0.0+a", False)])
    assert first == second == "1.0.0+b"
    assert resolve("tool@1.0.0+a", [("1.0.0+a", False), ("1.0.0+b", False)]) == "1.0.0+a"


def test_no_match_lists_every_version_highest_first_with_annotations() -> None:
    error = no_match("tool@^3")
    assert error.name == "tool"
    assert error.spec == "^3"
    assert error.versions == [
        "2.0.0-rc.1 (prerelease)",
        "1.11.0 (deprecated)",
        "1.10.0",
        "1.2.0",
        "1.0.0",
        "0.9.0 (deprecated)",
    ]
    assert error.message == (
        "no version of 'tool' satisfies '^3'; versions: 2.0.0-rc.1 (prerelease), 1.11.0 (deprecated), 1.10.0, "
        "1.2.0, 1.0.0, 0.9.0 (deprecated)"
    )


def test_a_version_can_be_both_prerelease_and_deprecated() -> None:
    error = no_match("tool@^3", [("1.0.0-rc.1", True)])
    assert error.versions == ["1.0.0-rc.1 (prerelease, deprecated)"]


def test_no_match_explains_that_only_prereleases_match() -> None:
    error = no_match("tool@>=1.12")
    assert "only prereleases match; name a prerelease in the range to allow them, e.g. tool@2.0.0-rc.1" in str(error)


def test_latest_with_only_prereleases_explains_how_to_get_one() -> None:
    error = no_match("tool", [("1.0.0-rc.2", False), ("1.0.0-rc.1", False)])
    assert error.spec == "latest"
    assert "only prereleases match" in error.message
    assert "e.g. tool@1.0.0-rc.2" in error.message


def test_no_match_explains_that_the_matching_versions_are_deprecated() -> None:
    error = no_match("tool@~0.9")
    assert error.message.startswith(
        "no version of 'tool' satisfies '~0.9' (the matching versions are deprecated (0.9.0); pin one exactly to "
        "use it, e.g. tool@0.9.0)"
    )
    error = no_match("tool", [("1.0.0", True), ("1.1.0", True)])
    assert "the matching versions are deprecated (1.1.0, 1.0.0)" in error.message
    assert "e.g. tool@1.1.0" in error.message


def test_an_exact_pin_of_a_missing_version_has_no_extra_reason() -> None:
    error = no_match("tool@1.2.1")
    assert error.message.startswith("no version of 'tool' satisfies '1.2.1'; versions: ")
