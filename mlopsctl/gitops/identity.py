"""Who is acting: the git identity exactly as git itself would record it
(``git var GIT_COMMITTER_IDENT``: environment, then repository config, then global)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from mlopsctl.errors import EnvironmentProblem
from mlopsctl.gitops.git import GitFailed, git_text

_IDENT = re.compile(r"^(?P<name>.*?) <(?P<email>[^<>]*)> \d+ [+-]\d{4}$")


class Identity(NamedTuple):
    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def find_identity(root: Path | None) -> Identity | None:
    """The committer git would record from ``root``, or None when git cannot tell. A
    repository-local ``user.email`` wins over the global one, as it does for git, so the actor
    we check and record is the one git writes into the tag."""
    try:
        out = git_text(root, "var", "GIT_COMMITTER_IDENT")
    except GitFailed:
        return None
    match = _IDENT.match(out.strip())
    if match is None or not match["email"]:
        return None
    return Identity(match["name"], match["email"])


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
