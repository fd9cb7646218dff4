"""Strict SemVer 2.0: parsing, formatting, precedence, bumping."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlopsctl import semver
from mlopsctl.errors import ExitCode, UsageError
from mlopsctl.semver import Version, bump, greatest, parse

# --- parse / str ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("0.0.0", Version(0, 0, 0)),
        ("1.2.3", Version(1, 2, 3)),
        ("10.20.30", Version(10, 20, 30)),
        ("1.0.0-alpha", Version(1, 0, 0, ("alpha",))),
        ("1.0.0-alpha.1", Version(1, 0, 0, ("alpha", "1"))),
        ("1.0.0-0.3.7", Version(1, 0, 0, ("0", "3", "7"))),
        ("1.0.0-x.7.z.92", Version(1, 0, 0, ("x", "7", "z", "92"))),
        ("1.0.0-x-y-z.--", Version(1, 0, 0, ("x-y-z", "--"))),
        ("1.0.0-0alpha", Version(1, 0, 0, ("0alpha",))),
        ("1.0.0+20130313144700", Version(1, 0, 0, (), ("20130313144700",))),
        ("1.0.0-beta+exp.sha.5114f85", Version(1, 0, 0, ("beta",), ("exp", "sha", "5114f85"))),
        ("1.0.0+21AF26D3----117B344092BD", Version(1, 0, 0, (), ("21AF26D3----117B344092BD",))),
        ("1.0.0+001", Version(1, 0, 0, (), ("001",))),  # leading zeros are fine in build metadata
        ("99999999999999999999.0.0", Version(99999999999999999999, 0, 0)),
    ],
)
def test_parse_and_str_round_trip(text: str, version: Version) -> None:
    assert parse(text) == version
    assert str(version) == text
    assert parse(str(version)) == version
    assert version.tag == f"v{text}"
    assert semver.is_valid(text)


@pytest.mark.parametrize("text", ["v1.2.3", "v0.1.0-rc.1+b.2", " 1.2.3 ", "v1.2.3\n"])
def test_v_prefix_and_surrounding_space_accepted(text: str) -> None:
    version = parse(text)
    assert str(version) == text.strip().removeprefix("v")
    assert version.tag == "v" + str(version)


@pytest.mark.parametrize(
    "text",
    [
        "1.2", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+", "v", "", "1", "1.2.3.4",
        "V1.2.3", "vv1.2.3", "1.2.3-01", "1.2.3-alpha..1", "1.2.3+b..1", "1.2.3-al_pha",
        "1.2.3+b_1", "-1.2.3", "1.-2.3", "a.b.c", "1.2.3 -rc.1", "1 .2.3", "latest",
    ],
)
def test_invalid_versions_raise_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert info.value.exit_code == ExitCode.USAGE == 2
    assert "semantic version" in info.value.message
    assert info.value.hint and "semver.org" in info.value.hint


@pytest.mark.parametrize("value", [None, 123, b"1.2.3"])
def test_non_string_is_a_usage_error(value: object) -> None:
    with pytest.raises(UsageError):
        parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["1\u0663.0.0", "1.0.1\u0660", "1.0.0-\u0661a"])
def test_non_ascii_digits_are_rejected(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


# --- precedence ----------------------------------------------------------------------------------

# semver.org §11, in ascending precedence.
SPEC_ORDER = [
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
    "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
]
MORE_ORDER = [
    "0.0.0", "0.0.1", "0.1.0", "0.9.0", "0.10.0", "1.0.0-alpha", "1.0.0-alpha.1",
    "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
    "1.0.1", "1.9.0", "1.10.0", "1.11.0", "2.0.0-0", "2.0.0-1", "2.0.0-2", "2.0.0-10",
    "2.0.0-A", "2.0.0-a", "2.0.0", "10.0.0",
]


@pytest.mark.parametrize("order", [SPEC_ORDER, MORE_ORDER], ids=["spec-11", "more"])
def test_precedence(order: list[str]) -> None:
    versions = [parse(v) for v in order]
    for low, high in itertools.pairwise(versions):
        assert low.sort_key() < high.sort_key(), (str(low), str(high))
    shuffled = versions[:]
    random.Random(7).shuffle(shuffled)
    assert [str(v) for v in sorted(shuffled, key=Version.sort_key)] == order


def test_numeric_identifiers_sort_numerically_and_before_alphanumeric() -> None:
    assert parse("1.0.0-2").sort_key() < parse("1.0.0-10").sort_key()
    assert parse("1.0.0-999").sort_key() < parse("1.0.0-a").sort_key()
    assert parse("1.0.0-rc.9").sort_key() < parse("1.0.0-rc.10").sort_key()
    assert parse("1.0.0-rc.10").sort_key() < parse("1.0.0-rc.a").sort_key()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0.0", "1.0.0+build.1"),
        ("1.0.0+a", "1.0.0+b"),
        ("1.0.0-rc.1+x", "1.0.0-rc.1+y.z"),
        ("v2.1.0", "2.1.0+20240101"),
    ],
)
def test_build_metadata_ignored_in_precedence(a: str, b: str) -> None:
    assert parse(a).sort_key() == parse(b).sort_key()


# --- bump ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["major", "minor", "patch"])
def test_bump_from_nothing_is_0_1_0(part: str) -> None:
    assert bump(None, part) == Version(0, 1, 0)


@pytest.mark.parametrize(
    ("current", "part", "expected"),
    [
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "patch", "1.2.4"),
        ("0.1.0", "minor", "0.2.0"),
        ("0.1.0", "patch", "0.1.1"),
        ("0.1.0", "major", "1.0.0"),
        ("9.9.9", "patch", "9.9.10"),
        ("1.2.3+build.5", "patch", "1.2.4"),  # build metadata is dropped
        # A prerelease becomes its own release when the part allows it...
        ("1.2.0-rc.1", "minor", "1.2.0"),
        ("1.2.0-rc.1", "patch", "1.2.0"),
        ("1.2.3-rc.1", "patch", "1.2.3"),
        ("2.0.0-rc.1", "major", "2.0.0"),
        ("2.0.0-rc.1", "minor", "2.0.0"),
        ("2.0.0-alpha+b.1", "patch", "2.0.0"),
        # ...and otherwise moves on like a release would.
        ("1.2.3-rc.1", "minor", "1.3.0"),
        ("1.2.3-rc.1", "major", "2.0.0"),
        ("1.2.0-rc.1", "major", "2.0.0"),
    ],
)
def test_bump(current: str, part: str, expected: str) -> None:
    result = bump(parse(current), part)
    assert str(result) == expected
    assert result.sort_key() > parse(current).sort_key()


@pytest.mark.parametrize("part", ["", "Major", "build", "prerelease"])
def test_bump_unknown_part(part: str) -> None:
    with pytest.raises(UsageError) as info:
        bump(parse("1.0.0"), part)
    assert info.value.exit_code == 2


NUMS = st.integers(min_value=0, max_value=1000)
PRE = st.lists(st.sampled_from(["alpha", "beta", "rc", "0", "1", "11", "x-y"]), max_size=3)


@given(NUMS, NUMS, NUMS, PRE, st.sampled_from(["major", "minor", "patch"]))
def test_bump_always_increases_precedence(
    major: int, minor: int, patch: int, pre: list[str], part: str
) -> None:
    current = Version(major, minor, patch, tuple(pre))
    result = bump(current, part)
    assert result.sort_key() > current.sort_key()
    assert result.prerelease == () and result.build == ()
    assert parse(str(current)) == current


# --- greatest ------------------------------------------------------------------------------------


def test_greatest() -> None:
    assert greatest([]) is None
    assert greatest([parse("1.0.0")]) == parse("1.0.0")
    many = [parse(v) for v in ["1.0.0", "1.10.0", "1.9.0", "1.10.0-rc.1", "0.99.99"]]
    assert greatest(many) == parse("1.10.0")
    assert greatest([parse("2.0.0-rc.1"), parse("1.99.0")]) == parse("2.0.0-rc.1")
    assert greatest([parse("1.0.0-beta.11"), parse("1.0.0-beta.2")]) == parse("1.0.0-beta.11")
    assert greatest([parse(v) for v in SPEC_ORDER[::-1]]) == parse("1.0.0")
