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


def notes_map(root: Path, ref: str) -> dict[str, str]:
    """``commit -> note blob id`` for every note under ``ref`` (empty when there are none)."""
    from mlopsctl.gitops.git import GitFailed

    try:
        out = git(root, "notes", f"--ref={ref}", "list").decode()
    except GitFailed:
        return {}
    pairs = (line.split() for line in out.splitlines())
    return {p[1]: p[0] for p in pairs if len(p) == 2}
