"""Reading every tag with one ``git for-each-ref``; writing commits, tags and refs safely.

Writes never touch the user's index or sweep up their changes: a commit is built in a temporary
index from HEAD's tree plus our files, and the branch moves by compare-and-swap.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from mlopsctl.errors import ConflictError, EnvironmentProblem
from mlopsctl.fsio import atomic_write
from mlopsctl.gitops.git import GitFailed, git, git_ok, git_text

# %00 separates fields; a record ends with an extra %00 before git's newline.
_FIELDS = (
    "%(refname)",
    "%(objecttype)",
    "%(objectname)",
    "%(*objectname)",
    "%(*objecttype)",
    "%(taggername)",
    "%(taggeremail)",
    "%(taggerdate:unix)",
    "%(taggerdate:iso-strict)",
    "%(*committerdate:unix)",
    "%(contents)",
    "%(contents:signature)",
)
_FORMAT = "%00".join(_FIELDS) + "%00"


class TagRecord(NamedTuple):
    """An annotated tag as read from git."""

    name: str  # without refs/tags/
    tag_sha: str
    commit: str  # the peeled target
    tagger_name: str
    tagger_email: str
    timestamp: int  # unix seconds
    date_iso: str  # with the tagger's timezone
    message: str
    commit_time: int = 0  # committer date of the target commit
    annotated: bool = True  # lightweight tags only matter for GTO's counters


def _record(chunk: list[str]) -> TagRecord | None:
    refname = chunk[0].lstrip("\n").removeprefix("refs/tags/")
    if chunk[1] == "commit":  # a lightweight tag
        return TagRecord(refname, "", chunk[2], "", "", 0, "", "", annotated=False)
    if chunk[1] != "tag" or chunk[4] != "commit" or not chunk[7]:
        return None  # a tag of a tree/blob/tag: not a registry event
    return TagRecord(
        name=refname,
        tag_sha=chunk[2],
        commit=chunk[3],
        tagger_name=chunk[5],
        tagger_email=chunk[6].strip("<>"),
        timestamp=int(chunk[7]),
        date_iso=chunk[8],
        message=chunk[10].removesuffix(chunk[11]) if chunk[11] else chunk[10],
        commit_time=int(chunk[9] or 0),
    )


def read_tags(root: Path) -> list[TagRecord]:
    """Every tag pointing at a commit, in one git call. Lightweight ones come back with
    ``annotated=False``: they are no events (GTO ignores them) but still count for counters."""
    out = git(root, "for-each-ref", f"--format={_FORMAT}", "refs/tags")
    fields = out.decode("utf-8", errors="replace").split("\0")
    width = len(_FIELDS)
    records = (_record(fields[i : i + width]) for i in range(0, len(fields) - width + 1, width))
    return [r for r in records if r is not None]


def head_commit(root: Path) -> str | None:
    try:
        return git_text(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    except GitFailed:
        return None


def current_branch(root: Path) -> str:
    """The branch HEAD points at (``refs/heads/...``); EnvironmentProblem when detached."""
    try:
        return git_text(root, "symbolic-ref", "-q", "HEAD")
    except GitFailed as exc:
        raise EnvironmentProblem(
            "HEAD is detached: there is no branch to record the registry change on",
            hint="git switch -c <branch>  (or check out an existing branch)",
        ) from exc


def commit_files(
    root: Path,
    files: Mapping[str, bytes],
    message: str,
    expected_head: str | None,
    remove: Sequence[str] = (),
) -> str:
    """Commit ``files`` (repo-relative path -> content), and the removal of the paths in
    ``remove``, on top of ``expected_head`` and move the current branch there by
    compare-and-swap. Returns the new commit. ConflictError if the branch moved meanwhile.
    Nothing else in the work tree or index is committed."""
    branch = current_branch(root)
    with tempfile.TemporaryDirectory(prefix="mlopsctl-index-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        if expected_head:
            git(root, "read-tree", expected_head, env=env)
        lines = []
        for path, content in files.items():
            blob = git_text(root, "hash-object", "-w", "--stdin", input=content)
            lines.append(f"100644 {blob}\t{path}")
        lines += [f"0 {'0' * 40}\t{path}" for path in remove]  # mode 0: drop the entry
        git(root, "update-index", "--add", "--index-info", input=("\n".join(lines) + "\n").encode(),
            env=env)
        tree = git_text(root, "write-tree", env=env)
    parents = ["-p", expected_head] if expected_head else []
    commit = git_text(root, "commit-tree", tree, *parents, "-F", "-", input=message.encode())
    old = expected_head or ""
    try:
        git(root, "update-ref", "-m", f"mlopsctl: {message.splitlines()[0]}", branch, commit, old)
    except GitFailed as exc:
        raise ConflictError(
            f"{branch.removeprefix('refs/heads/')} moved while mlopsctl was writing",
            hint="run the command again",
        ) from exc
    return commit


def sync_worktree(root: Path, files: Mapping[str, bytes], remove: Sequence[str] = ()) -> None:
    """Bring the work tree and the index in line with files just committed (and removed)."""
    for rel, content in files.items():
        atomic_write(root / rel, content, durable=False)  # git holds the committed copy
    if files:
        git(root, "update-index", "--add", "--", *files.keys())
    for rel in remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / rel)
    if remove:
        git(root, "update-index", "--force-remove", "--", *remove)


def repair_index(root: Path, under: str = ".mlops") -> list[str]:
    """Undo what a write killed between moving the branch and updating the index leaves:
    registry files in HEAD shown as staged deletions. Restores their index entries (and the
    files, if missing) from HEAD. Returns the paths repaired."""
    out = git(root, "diff", "--cached", "--name-only", "--diff-filter=D", "-z", "HEAD", "--",
              under)
    paths = [p for p in out.decode().split("\0") if p]
    if paths:
        git(root, "reset", "-q", "HEAD", "--", *paths)
        missing = [p for p in paths if not (root / p).exists()]
        if missing:
            git(root, "checkout", "HEAD", "--", *missing)
    return paths


def unstage(root: Path, commit: str, paths: list[str]) -> None:
    """Reset the index entries of ``paths`` to ``commit`` (work-tree files stay)."""
    git(root, "reset", "-q", commit, "--", *paths)


def remove_untracked(root: Path, commit: str, paths: list[str]) -> None:
    """Delete work-tree files among ``paths`` that ``commit`` does not have (our own files from
    an abandoned write)."""
    for rel in paths:
        if not git_ok(root, "cat-file", "-e", f"{commit}:{rel}"):
            (root / rel).unlink(missing_ok=True)


def create_tag(
    root: Path,
    name: str,
    target: str,
    message: str,
    *,
    sign: bool = False,
    env: Mapping[str, str] | None = None,
) -> None:
    """Create the annotated tag ``name`` -> ``target``. git creates the ref only if it does not
    exist (a locked compare-and-swap against the null id): ConflictError when it does."""
    if not message.endswith("\n"):
        message += "\n"  # else git glues a signature onto the last line
    with tempfile.NamedTemporaryFile("wb", prefix="mlopsctl-tag-", delete=False) as fh:
        fh.write(message.encode())
    try:
        flag = "-s" if sign else "-a"
        git(root, "tag", flag, "--cleanup=verbatim", "-F", fh.name, name, target, env=env)
    except GitFailed as exc:
        if git_ok(root, "rev-parse", "-q", "--verify", f"refs/tags/{name}"):
            raise ConflictError(f"tag {name} already exists") from exc
        raise
    finally:
        os.unlink(fh.name)


def delete_ref_if(root: Path, ref: str, expected: str) -> bool:
    """Delete ``ref`` only if it still points at ``expected``."""
    return git_ok(root, "update-ref", "-d", ref, expected)


def move_ref_back(root: Path, ref: str, new: str, expected: str) -> bool:
    return git_ok(root, "update-ref", ref, new, expected)
