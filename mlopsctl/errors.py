"""Errors that cross the CLI boundary, and the exit codes they map to.

Services raise these; ``cli.main`` turns them into ``error: ...`` / ``hint: ...`` lines and an exit
code. Anything else that escapes is a bug (exit 4).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a gate, check or policy said no
    USAGE = 2  # bad input
    ENVIRONMENT = 3  # not a repo, remote unreachable, bad manifest, no key
    BUG = 4
    INTERRUPTED = 130


class MlopsError(Exception):
    """Base error: a message for the user and an optional hint saying what to do next."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class CheckFailed(MlopsError):
    """A gate, check or policy refused (exit 1)."""

    exit_code = ExitCode.FAILED


class UsageError(MlopsError):
    """The user asked for something malformed or impossible (exit 2)."""

    exit_code = ExitCode.USAGE


class EnvironmentProblem(MlopsError):
    """The environment is not usable: not a repo, no identity, bad manifest, no key (exit 3)."""

    exit_code = ExitCode.ENVIRONMENT


class IntegrityError(CheckFailed):
    """Stored bytes do not match what the registry promises (tampered, wrong key, truncated)."""


class ConflictError(CheckFailed):
    """Another writer got there first (a compare-and-swap lost)."""
