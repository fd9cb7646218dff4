"""The one place that runs git. Plumbing through subprocess: no import cost, exact semantics."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlopsctl.errors import EnvironmentProblem


class GitFailed(Exception):
    """git exited non-zero; callers decide what it means."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)}: {stderr.strip() or f'exit {returncode}'}")
        self.returncode = returncode
        self.stderr = stderr


def git(
    root: Path | None,
    *args: str,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Run ``git args...`` in ``root``; return stdout bytes or raise GitFailed."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=root,
            input=input,
            capture_output=True,
            env=full_env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise EnvironmentProblem("git is not installed", hint="install git >= 2.30") from exc
    if proc.returncode != 0:
        raise GitFailed(args, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout


def git_text(root: Path | None, *args: str, **kwargs: object) -> str:
    return git(root, *args, **kwargs).decode().strip()  # type: ignore[arg-type]


def git_ok(root: Path | None, *args: str) -> bool:
    try:
        git(root, *args)
    except GitFailed:
        return False
    return True
