"""Strict SemVer 2.0: parse, format, compare (by precedence) and bump."""

from __future__ import annotations

import re
from typing import NamedTuple

from mlopsctl.errors import UsageError

# [0-9], not \d: \d also matches other scripts' digits, which are no SemVer.
_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*"
_BUILD_ID = r"[0-9a-zA-Z-]+"
SEMVER_PATTERN = (
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<prerelease>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)
_SEMVER_RE = re.compile(rf"v?{SEMVER_PATTERN}")  # used with fullmatch

PARTS = ("major", "minor", "patch")


class Version(NamedTuple):
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def tag(self) -> str:
        """The form used in git tags: ``v1.2.3``."""
        return f"v{self}"

    def sort_key(self) -> tuple[object, ...]:
        """A key ordering versions by SemVer precedence (build metadata ignored)."""
        if not self.prerelease:
            pre: tuple[object, ...] = ((1,),)
        else:
            pre = ((0,), *(_pre_key(p) for p in self.prerelease))
        return (self.major, self.minor, self.patch, pre)


def _pre_key(ident: str) -> tuple[int, int | str]:
    # Numeric identifiers sort before alphanumeric ones, and numerically among themselves.
    return (0, int(ident)) if ident.isdigit() else (1, ident)


def parse(text: str) -> Version:
    """Parse ``1.2.3``, ``v1.2.3-rc.1+build.5``; raise UsageError on anything else."""
    match = _SEMVER_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise UsageError(
            f"'{text}' is not a semantic version",
            hint="use MAJOR.MINOR.PATCH, e.g. 1.2.0 or 1.2.0-rc.1 (see https://semver.org)",
        )
    pre = match["prerelease"]
    build = match["build"]
    return Version(
        int(match["major"]),
        int(match["minor"]),
        int(match["patch"]),
        tuple(pre.split(".")) if pre else (),
        tuple(build.split(".")) if build else (),
    )


def is_valid(text: str) -> bool:
    return isinstance(text, str) and bool(_SEMVER_RE.fullmatch(text))


def bump(current: Version | None, part: str) -> Version:
    """Next version after ``current`` for ``part`` in major/minor/patch.

    A prerelease bumps to its own release when the part allows it (1.2.0-rc.1 --minor -> 1.2.0),
    as SemVer tools commonly do. With no current version the first release is 0.1.0.
    """
    if part not in PARTS:
        raise UsageError(f"unknown version part '{part}'", hint="use major, minor or patch")
    if current is None:
        return Version(0, 1, 0)
    major, minor, patch = current.major, current.minor, current.patch
    releases_itself = (
        part == "patch"
        or (part == "minor" and patch == 0)
        or (part == "major" and minor == 0 and patch == 0)
    )
    if current.prerelease and releases_itself:
        return Version(major, minor, patch)
    if part == "major":
        return Version(major + 1, 0, 0)
    if part == "minor":
        return Version(major, minor + 1, 0)
    return Version(major, minor, patch + 1)


def greatest(versions: list[Version]) -> Version | None:
    return max(versions, key=Version.sort_key) if versions else None
