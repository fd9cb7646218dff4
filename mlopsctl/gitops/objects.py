"""Reading many git objects in one process: ``git cat-file --batch``, and git's blob ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from mlopsctl.gitops.git import git


def blob_id(content: bytes) -> str:
    """The id git gives ``content`` as a blob (``git hash-object``), computed without git."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def read_objects(root: Path, specs: Sequence[str]) -> dict[str, bytes | None]:
    """``spec -> content`` for every object name (``<commit>:<path>``, a blob id, ...), read
    with a single ``git cat-file --batch``; None for a spec git cannot find."""
    if not specs:
        return {}
    # A spec holding a newline would desynchronise the stream: such paths are never ours.
    safe = [s for s in specs if "\n" not in s]
    out = git(root, "cat-file", "--batch", input=("\n".join(safe) + "\n").encode())
    found: dict[str, bytes | None] = {s: None for s in specs}
    pos = 0
    for spec in safe:
        end = out.index(b"\n", pos)
        line = out[pos:end]
        pos = end + 1
        if line.endswith((b" missing", b" ambiguous")):
            continue
        size = int(line.rsplit(b" ", 1)[1])
        found[spec] = out[pos : pos + size]
        pos += size + 1  # the content is followed by a newline
    return found


def read_ids(root: Path, specs: Sequence[str]) -> dict[str, str | None]:
    """``spec -> blob id`` (None when absent) from one ``git cat-file --batch-check``: git
    resolves every ``<commit>:<path>`` without inflating a single blob."""
    if not specs:
        return {}
    safe = [s for s in specs if "\n" not in s]
    out = git(root, "cat-file", "--batch-check=%(objectname) %(objecttype)",
              input=("\n".join(safe) + "\n").encode()).decode().split("\n")
    found: dict[str, str | None] = {s: None for s in specs}
    for spec, line in zip(safe, out, strict=False):
        sha, _, kind = line.partition(" ")
        if kind == "blob":
            found[spec] = sha
    return found


def unchanged_ids(root: Path, under: str) -> dict[str, str]:
    """``path -> blob id`` for the files under ``under`` whose work-tree copy is what the index
    holds (``git ls-files -s`` minus ``git diff-files``): their ids need no read and no hash."""
    staged = git(root, "ls-files", "-s", "-z", "--", under).decode(errors="replace")
    ids = {}
    for record in filter(None, staged.split("\0")):
        meta, _, path = record.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[2] == "0":  # stage 0: not in a merge conflict
            ids[path] = parts[1]
    if ids:
        changed = git(root, "diff-files", "--name-only", "-z", "--", under).decode(
            errors="replace")
        for path in changed.split("\0"):
            ids.pop(path, None)
    return ids


def notes_map(root: Path, ref: str) -> dict[str, str]:
    """``commit -> note blob id`` for every note under ``ref`` (empty when there are none)."""
    from mlopsctl.gitops.git import GitFailed

    try:
        out = git(root, "notes", f"--ref={ref}", "list").decode()
    except GitFailed:
        return {}
    pairs = (line.split() for line in out.splitlines())
    return {p[1]: p[0] for p in pairs if len(p) == 2}
