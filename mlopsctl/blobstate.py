"""Where each version's stored blob stands: the manifests of many versions read in one git call,
and gc's tombstones (what tells "collected on purpose" apart from "lost").

Both ``retention`` (gc) and ``teamsync`` (push refuses lost blobs) read these, and ``artifacts``
(verify skips collected versions); it sits below all three so none imports another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import registry as reg
from mlopsctl.errors import MlopsError
from mlopsctl.gitops.git import git

TOMBSTONE_DIR = "mlopsctl-collected"

# Blob states, as `retention.blob_states` reports them and `show` displays them.
STORED = "stored"
COLLECTED = "collected"  # removed by gc (a tombstone says so)
MISSING = "missing"  # absent, and no tombstone: never uploaded, or lost


def tagged_manifests(project: Any, entries: list[reg.VersionEntry]
                     ) -> dict[tuple[str, str], mf.VersionManifest | None]:
    """(model, 'v1.2.0') -> the manifest committed on the version's tagged commit (the immutable
    truth), or None when that commit has none (a version registered by another tool) or it does
    not parse. One ``git cat-file --batch`` for all of them."""
    if not entries:
        return {}
    specs = []
    for entry in entries:
        rel = project.ws.rel(project.ws.manifest_path(entry.model, entry.number))
        specs.append(f"{entry.commit}:{rel}")
    out = git(project.root, "cat-file", "--batch", input=("\n".join(specs) + "\n").encode())
    result: dict[tuple[str, str], mf.VersionManifest | None] = {}
    pos = 0
    for entry, spec in zip(entries, specs, strict=True):
        end = out.index(b"\n", pos)
        header = out[pos:end].decode(errors="replace").split()
        pos = end + 1
        manifest = None
        if len(header) == 3 and header[1] == "blob":
            size = int(header[2])
            text = out[pos : pos + size]
            pos += size + 1  # the content, then a newline
            try:
                manifest = mf.parse_yaml(text, mf.VersionManifest,
                                         f"{spec.split(':', 1)[1]} at {entry.commit[:8]}")
            except MlopsError:
                manifest = None
        elif len(header) == 3:  # a tree or another object under that path: skip its content
            pos += int(header[2]) + 1
        result[(entry.model, entry.version)] = manifest
    return result


def tombstone_path(base: Path, md5: str) -> Path:
    return base / TOMBSTONE_DIR / md5


def tombstone(remote: Any, md5: str) -> dict[str, Any] | None:
    """gc's record of removing ``md5`` from this (local-directory) remote, or None."""
    base = remote.local_dir
    if base is None:
        return None
    try:
        doc = json.loads(tombstone_path(base, md5).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # present but unreadable: still collected on purpose
    return doc if isinstance(doc, dict) else {}


def was_collected(remote: Any, md5: str) -> bool:
    """Whether gc removed ``md5`` from this (local-directory) remote on purpose."""
    return tombstone(remote, md5) is not None
