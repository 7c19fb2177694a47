from __future__ import annotations

import pytest

from registry.semver import Version, VersionRange

SPEC_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
]


def v(text: str) -> Version:
    return Version.parse(text)


def matches(spec: str, *versions: str) -> list[str]:
    rng = VersionRange.parse(spec)
    return [text for text in versions if rng.contains(v(text))]


# --- Version ----------------------------------------------------------------------------------------------------


def test_parse_reads_every_part_and_numeric_identifiers_become_ints() -> None:
    parsed = v("1.22.333-rc.1.x-y.0+build.007")
    assert parsed == Version(1, 22, 333, ("rc", 1, "x-y", 0), "build.007")
    assert parsed.is_prerelease


def test_str_gives_back_the_canonical_text() -> None:
    for text in ["0.0.0", "1.2.3", "1.0.0-alpha.1", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0-0a"]:
        assert str(v(text)) == text


def test_a_release_is_not_a_prerelease() -> None:
    assert not v("1.0.0").is_prerelease
    assert not v("1.0.0+build").is_prerelease


@pytest.mark.parametrize(
    "text",
    ["1.2", "1", "", "1.2.3.4", "v1.2.3", " 1.2.3", "1.2.3 ", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+",
     "1.2.3-01", "1.2.3-a..b", "1.2.3-a_b", "1.2.3+a..b", "-1.2.3", "1.2.x", "a.b.c", "1.2.3\n", "１.2.3"],
)  # fmt: skip
def test_malformed_versions_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a semantic version"):
        Version.parse(text)


def test_the_parse_error_names_the_text_and_the_expected_form() -> None:
    with pytest.raises(ValueError) as info:
        Version.parse("1.2")
    assert str(info.value) == (
        "'1.2' is not a semantic version (expected MAJOR.MINOR.PATCH such as 1.2.0, optionally -prerelease and +build)"
    )


def test_the_parse_error_points_at_a_leading_zero() -> None:
    with pytest.raises(ValueError, match="'01' has a leading zero"):
        Version.parse("1.01.0")
    with pytest.raises(ValueError, match="prerelease identifier '007' has a leading zero"):
        Version.parse("1.0.0-rc.007")


def test_leading_zeros_are_allowed_in_alphanumeric_prerelease_identifiers_and_build() -> None:
    assert v("1.0.0-0abc").prerelease == ("0abc",)
    assert v("1.0.0+001").build == "001"


def test_a_hand_built_version_equals_the_parsed_one() -> None:
    assert Version(1, 0, 0, ("rc", "1")) == v("1.0.0-rc.1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, 0), "major must be a non-negative integer"),
        ((1, 0, 0, ("a b",)), "not a valid prerelease identifier"),
        ((1, 0, 0, ("01",)), "not a valid prerelease identifier"),
        ((1, 0, 0, (), "a+b"), "not valid build metadata"),
    ],
)
def test_constructing_an_invalid_version_is_rejected(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Version(*args)  # type: ignore[arg-type]


def test_the_semver_spec_example_chain_is_in_increasing_precedence() -> None:
    versions = [v(text) for text in SPEC_CHAIN]
    for lower, higher in zip(versions, versions[1:], strict=False):
        assert lower < higher
        assert lower <= higher
        assert higher > lower
        assert higher >= lower
        assert not higher < lower
    shuffled = versions[3:] + versions[:3]
    assert [str(x) for x in sorted(shuffled)] == SPEC_CHAIN
    assert [str(x) for x in sorted(shuffled, key=Version.sort_key)] == SPEC_CHAIN


def test_numbers_compare_numerically_not_as_text() -> None:
    assert v("1.9.0") < v("1.10.0")
    assert v("2.0.0") > v("1.99.99")
    assert v("1.0.0-2") < v("1.0.0-10")


def test_numeric_identifiers_are_lower_than_alphanumeric_ones() -> None:
    assert v("1.0.0-999") < v("1.0.0-a")
    assert v("1.0.0-rc.9") < v("1.0.0-rc.a")


def test_a_prerelease_is_lower_than_its_release_but_higher_than_the_previous_release() -> None:
    assert v("0.9.9") < v("1.0.0-0") < v("1.0.0")


def test_build_metadata_is_ignored_for_precedence_but_not_for_equality() -> None:
    a, b = v("1.0.0+a"), v("1.0.0+b")
    assert a != b
    assert not a < b
    assert not b < a
    assert a <= b
    assert a >= b
    assert a.sort_key() == b.sort_key()
    assert v("1.0.0+a") == v("1.0.0+a")
    assert len({a, b, v("1.0.0+a")}) == 2


def test_comparing_with_something_else_is_a_type_error() -> None:
    text: object = "1.0.1"
    with pytest.raises(TypeError):
        _ = v("1.0.0") < text
    assert v("1.0.1") != text


# --- VersionRange -----------------------------------------------------------------------------------------------

CANDIDATES = ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9",
              "2.0.0", "2.1.0"]  # fmt: skip


@pytest.mark.parametrize("spec", ["", "latest", "*", "x", "X", "  ", "x.x"])
def test_any_spec_matches_every_release_but_no_prerelease(spec: str) -> None:
    assert matches(spec, *CANDIDATES, "2.2.0-rc.1", "0.0.0") == [*CANDIDATES, "0.0.0"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1.2.3", ["1.2.3"]),
        ("=1.2.3", ["1.2.3"]),
        ("1.2", ["1.2.0", "1.2.3", "1.2.9"]),
        ("1.2.x", ["1.2.0", "1.2.3", "1.2.9"]),
        ("1.2.*", ["1.2.0", "1.2.3", "1.2.9"]),
        ("1", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("1.x", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("1.x.x", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("^1.2.3", ["1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("^0.2.3", ["0.2.3", "0.2.9"]),
        ("^0.0.3", ["0.0.3"]),
        ("^1.2", ["1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("^0.2", ["0.2.3", "0.2.9"]),
        ("^0.0", ["0.0.3", "0.0.4"]),
        ("^0", ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0"]),
        ("^1", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("^1.x", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("~1.2.3", ["1.2.3", "1.2.9"]),
        ("~1.2", ["1.2.0", "1.2.3", "1.2.9"]),
        ("~1", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        ("~0.2.3", ["0.2.3", "0.2.9"]),
        (">=1.9.9", ["1.9.9", "2.0.0", "2.1.0"]),
        (">1.9.9", ["2.0.0", "2.1.0"]),
        ("<0.2.3", ["0.0.3", "0.0.4"]),
        ("<=0.2.3", ["0.0.3", "0.0.4", "0.2.3"]),
        ("!=0.0.3", [c for c in CANDIDATES if c != "0.0.3"]),
        (">=2.0", ["2.0.0", "2.1.0"]),
        (">=2", ["2.0.0", "2.1.0"]),
        ("<0.2", ["0.0.3", "0.0.4"]),
        ("<1", ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0"]),
        (">1.2", ["1.3.0", "1.9.9", "2.0.0", "2.1.0"]),
        (">1", ["2.0.0", "2.1.0"]),
        ("<=1.2", ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.2.0", "1.2.3", "1.2.9"]),
        ("<=0", ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0"]),
        ("!=1.2", [c for c in CANDIDATES if not c.startswith("1.2.")]),
        (">=1.0,<2", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        (">=1.0 <2", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        (">=1.0, <2", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        (">= 1.0 , < 2", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"]),
        (">=1.0,<2,!=1.2.3 !=1.3", ["1.0.0", "1.2.0", "1.2.9", "1.9.9"]),
        (">1.2.3 <1.2.9", []),
        ("^0.0.3 || ^2", ["0.0.3", "2.0.0", "2.1.0"]),
        ("<0.1||>=2.1.0", ["0.0.3", "0.0.4", "2.1.0"]),
        ("1.2.3 || 1.3.0 || 9", ["1.2.3", "1.3.0"]),
    ],
)
def test_each_range_form_selects_the_expected_versions(spec: str, expected: list[str]) -> None:
    assert matches(spec, *CANDIDATES) == expected


def test_str_of_a_range_is_the_original_spec_text() -> None:
    for spec in ["^1.2", ">= 1.0 , < 2", "", "latest", " ~1.2.3 "]:
        assert str(VersionRange.parse(spec)) == spec


def test_ranges_are_equal_when_their_spec_text_is() -> None:
    assert VersionRange.parse("^1.2") == VersionRange("^1.2")
    assert hash(VersionRange.parse("^1.2")) == hash(VersionRange("^1.2"))
    assert VersionRange.parse("^1.2") != VersionRange.parse("^1.2.0")


def test_only_a_pin_of_one_full_version_is_exact() -> None:
    for spec in ["1.2.3", "=1.2.3", "1.2.3-rc.1", "= 1.2.3", "1.2.3+build"]:
        assert VersionRange.parse(spec).is_exact, spec
    for spec in ["", "latest", "*", "1.2", "1.2.x", "^1.2.3", "~1.2.3", ">=1.2.3", ">=1.2.3 <=1.2.3", "1.2.3 || 1.2.4"]:
        assert not VersionRange.parse(spec).is_exact, spec


def test_an_exact_pin_ignores_build_metadata_unless_it_names_one() -> None:
    assert matches("1.0.0", "1.0.0+a", "1.0.0+b", "1.0.0") == ["1.0.0+a", "1.0.0+b", "1.0.0"]
    assert matches("1.0.0+b", "1.0.0+a", "1.0.0+b", "1.0.0") == ["1.0.0+b"]


def test_the_in_operator_tests_membership() -> None:
    assert v("1.2.3") in VersionRange.parse("^1")
    assert v("2.0.0") not in VersionRange.parse("^1")
    assert "1.2.3" not in VersionRange.parse("^1")


# --- prerelease rule ----------------------------------------------------------------------------------------------


def test_an_exact_pin_of_a_prerelease_matches_it() -> None:
    assert matches("1.2.3-rc.1", "1.2.3-rc.1", "1.2.3-rc.2", "1.2.3") == ["1.2.3-rc.1"]
    assert matches("=1.2.3-rc.1", "1.2.3-rc.1") == ["1.2.3-rc.1"]


def test_ranges_without_a_named_prerelease_exclude_all_prereleases() -> None:
    pre = ["1.2.4-rc.1", "1.3.0-alpha", "2.0.0-rc.1"]
    for spec in ["^1.2.3", "~1.2", ">=1.0.0", "1.x", ">1.2.3 <3", "*", "latest", ""]:
        assert matches(spec, *pre) == [], spec


def test_a_named_prerelease_admits_prereleases_of_the_same_core_only() -> None:
    candidates = ["1.2.3-beta.1", "1.2.3-beta.2", "1.2.3-rc.1", "1.2.3", "1.2.4-beta.1", "1.2.4", "2.0.0-rc.1"]
    assert matches("^1.2.3-beta.2", *candidates) == ["1.2.3-beta.2", "1.2.3-rc.1", "1.2.3", "1.2.4"]
    assert matches("~1.2.3-beta.2", *candidates) == ["1.2.3-beta.2", "1.2.3-rc.1", "1.2.3", "1.2.4"]
    assert matches(">=1.2.3-beta.1 <1.2.4", *candidates) == ["1.2.3-beta.1", "1.2.3-beta.2", "1.2.3-rc.1", "1.2.3"]
    assert matches(">1.2.3-beta.1", *candidates) == ["1.2.3-beta.2", "1.2.3-rc.1", "1.2.3", "1.2.4"]


def test_the_prerelease_opt_in_applies_per_or_alternative() -> None:
    candidates = ["1.0.0-rc.1", "2.0.0-rc.1", "2.0.0-rc.2"]
    assert matches("^1.0.0-rc.0 || ^2", *candidates) == ["1.0.0-rc.1"]
    assert matches("^1 || >=2.0.0-rc.2", *candidates) == ["2.0.0-rc.2"]


def test_an_upper_bound_with_a_named_prerelease_admits_lower_prereleases_of_that_core() -> None:
    assert matches("<2.0.0-rc.2", "2.0.0-rc.1", "2.0.0-rc.2", "1.9.0") == ["2.0.0-rc.1", "1.9.0"]


def test_a_partial_upper_bound_never_admits_prereleases_of_the_next_version() -> None:
    assert matches(">=2.0.0-alpha <2", "2.0.0-alpha", "2.0.0-beta") == []
    assert matches(">=2.0.0-alpha <2.0.0", "2.0.0-alpha", "2.0.0-beta") == ["2.0.0-alpha", "2.0.0-beta"]


def test_an_exclusion_does_not_opt_in_to_prereleases() -> None:
    assert matches(">=1.0.0 !=1.2.3-rc.1", "1.2.3-rc.2", "1.2.3") == ["1.2.3"]
    assert matches(">=1.2.3-rc.1 !=1.2.3-rc.1", "1.2.3-rc.1", "1.2.3-rc.2") == ["1.2.3-rc.2"]


def test_include_prerelease_tests_prereleases_like_releases() -> None:
    rng = VersionRange.parse("^1.2")
    assert not rng.contains(v("1.5.0-rc.1"))
    assert rng.contains(v("1.5.0-rc.1"), include_prerelease=True)
    assert not rng.contains(v("2.0.0-rc.1"), include_prerelease=True)


# --- malformed specs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("^^1", "more than one operator"),
        ("=>1.0", "more than one operator"),
        (">=", "needs a version after it"),
        (">= ", "needs a version after it"),
        (">= <2", "followed by another operator"),
        ("1.x.3", "number after a wildcard"),
        (">=1.0,,<2", "empty term between commas"),
        (",1.0", "empty term between commas"),
        ("1.0 ||", "empty alternative"),
        ("||", "empty alternative"),
        ("1.2-rc.1", "not a full version"),
        ("1.2.3 - 2.0.0", "hyphen ranges"),
        ("1.02", "'02' has a leading zero"),
        ("1.2.3-01", "leading zero"),
        ("v1.2.3", "'v1.2.3' is not a version"),
        ("latest || 1.0.0", "'latest' is not a version"),
        ("~>1.2", "more than one operator"),
        (">*", "needs a version"),
        ("^x", "needs a version"),
        ("!=*", "needs a version"),
        ("1.2.3.4", "is not a version"),
        ("abc", "is not a version"),
    ],
)
def test_malformed_specs_are_rejected_with_the_reason_and_the_allowed_forms(spec: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        VersionRange.parse(spec)
    message = str(info.value)
    assert message.startswith(f"{spec!r} is not a valid version spec: ")
    assert reason in message
    assert "allowed forms:" in message
    assert "^1.2.3" in message
    assert ">=1.0" in message
    assert "||" in message
