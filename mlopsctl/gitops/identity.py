"""Who is acting: the git identity, as git itself would resolve it (environment, then config)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from mlopsctl.errors import EnvironmentProblem
from mlopsctl.gitops.git import GitFailed, git_text


class Identity(NamedTuple):
    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def find_identity(root: Path | None) -> Identity | None:
    name = os.environ.get("GIT_COMMITTER_NAME")
    email = os.environ.get("GIT_COMMITTER_EMAIL")
    if not (name and email):
        try:
            out = git_text(root, "config", "--get-regexp", r"^user\.(name|email)$")
        except GitFailed:
            out = ""
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            if key == "user.name" and not name:
                name = value
            elif key == "user.email" and not email:
                email = value
    if name and email:
        return Identity(name, email)
    return None


def require_identity(root: Path | None) -> Identity:
    identity = find_identity(root)
    if identity is None:
        raise EnvironmentProblem(
            "git does not know who you are (user.name and user.email are not set)",
            hint='git config --global user.name "Your Name" && '
            'git config --global user.email you@example.com',
        )
    return identity


def repo_busy(root: Path, git_dir: Path) -> str | None:
    """A merge, rebase, cherry-pick or bisect in progress, by name, or None."""
    markers = {
        "MERGE_HEAD": "a merge",
        "rebase-merge": "a rebase",
        "rebase-apply": "a rebase",
        "CHERRY_PICK_HEAD": "a cherry-pick",
        "REVERT_HEAD": "a revert",
        "BISECT_LOG": "a bisect",
    }
    for marker, what in markers.items():
        if (git_dir / marker).exists():
            return what
    return None
