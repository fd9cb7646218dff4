"""Where each version's stored blob stands: the manifests of many versions read in one git call,
and gc's tombstones (what tells "collected on purpose" apart from "lost").

Both ``retention`` (gc) and ``teamsync`` (push refuses lost blobs) read these, ``artifacts``
(verify skips collected versions) and ``show MODEL``; it sits below all of them so none imports
another, and it imports no pydantic until schema objects are asked for.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from mlopsctl import registry as reg
from mlopsctl.errors import MlopsError
from mlopsctl.gitops.git import GitFailed, git
from mlopsctl.parsecache import ModelCaches, manifest_doc
from mlopsctl.store.remote import load_remote

if TYPE_CHECKING:
    from mlopsctl import manifests as mf

# Blob states, as `blob_states` reports them and `show` displays them.
STORED = "stored"
COLLECTED = "collected"  # removed by gc (a tombstone says so)
MISSING = "missing"  # absent, and no tombstone: never uploaded, or lost


def tagged_docs(ws: Any, entries: list[reg.VersionEntry]
                ) -> dict[tuple[str, str], dict[str, Any] | None]:
    """(model, 'v1.2.0') -> the manifest committed on the version's tagged commit (the immutable
    truth) as its schema validates it, or None when that commit has none (a version registered
    by another tool) or it is not valid. What was read before comes from ``parsecache`` (a
    commit's content never changes); the rest takes one ``git cat-file --batch``."""
    if not entries:
        return {}
    specs = [f"{e.commit}:{ws.rel(ws.manifest_path(e.model, e.number))}" for e in entries]
    caches = ModelCaches(ws.git_dir)
    result: dict[tuple[str, str], dict[str, Any] | None] = {}
    unknown = []
    for entry, spec in zip(entries, specs, strict=True):
        cache = caches.of(entry.model)
        blob = cache.blob_at(spec)
        doc = cache.get(blob) if blob else None
        if doc is None:
            unknown.append((entry, spec))
        result[(entry.model, entry.version)] = doc
    if unknown:
        out = git(ws.root, "cat-file", "--batch",
                  input=("\n".join(spec for _, spec in unknown) + "\n").encode())
        pos = 0
        for entry, spec in unknown:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode(errors="replace").split()
            pos = end + 1
            if len(header) == 3 and header[1] == "blob":
                size = int(header[2])
                text = out[pos : pos + size]
                pos += size + 1  # the content, then a newline
                cache = caches.of(entry.model)
                with contextlib.suppress(MlopsError):
                    result[(entry.model, entry.version)] = manifest_doc(
                        cache, text, f"{spec.split(':', 1)[1]} at {entry.commit[:8]}",
                        header[0])
                    cache.remember(spec, header[0])
            elif len(header) == 3:  # a tree or another object under that path: skip it
                pos += int(header[2]) + 1
    caches.save()
    return result


def tagged_manifests(project: Any, entries: list[reg.VersionEntry]
                     ) -> dict[tuple[str, str], mf.VersionManifest | None]:
    """As ``tagged_docs``, as schema objects."""
    from mlopsctl import manifests as mf  # pydantic: for the commands that want objects

    return {key: mf.VersionManifest.model_validate(doc) if doc is not None else None
            for key, doc in tagged_docs(project.ws, entries).items()}


def tombstone(remote: Any, md5: str) -> dict[str, Any] | None:
    """gc's record of removing ``md5`` from this remote (of any kind), or None."""
    data = remote.read_tombstone(md5)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return {}  # present but unreadable: still collected on purpose
    return doc if isinstance(doc, dict) else {}


def was_collected(remote: Any, md5: str) -> bool:
    """Whether gc removed ``md5`` from this remote on purpose."""
    return tombstone(remote, md5) is not None


# --- what show needs --------------------------------------------------------------------------


def blob_states(ws: Any, remote: Any, model: str) -> dict[str, str | None]:
    """'v1.2.0' -> STORED / COLLECTED / MISSING for every registered version of ``model`` whose
    blob lives in a directly-read local remote; None where it cannot be told cheaply (no
    manifest, or a cloud remote)."""
    state = reg.load(ws.root).model(model)
    if state is None:
        return {}
    entries = list(state.versions.values())
    if not remote.direct:
        return {e.version: None for e in entries}
    docs = tagged_docs(ws, entries)
    out: dict[str, str | None] = {}
    for entry in entries:
        doc = docs.get((entry.model, entry.version))
        if doc is None:
            out[entry.version] = None
            continue
        md5 = doc["artifact"]["stored"]["md5"]
        if remote.exists(md5):
            out[entry.version] = STORED
        else:
            out[entry.version] = COLLECTED if was_collected(remote, md5) else MISSING
    return out


def mark_collected(ws: Any, detail: dict[str, Any]) -> None:
    """For ``show MODEL``: set ``"blob"`` on every version of a ``views.model_detail`` document to
    "stored", "collected", "missing" or None (unknown). Never fails: a repository without an
    mlopsctl config or remote just gets None everywhere."""
    try:
        remote = load_remote(ws.root, ws.quick_remote_name())
        states = blob_states(ws, remote, str(detail["model"]))
    except (MlopsError, GitFailed, OSError):
        states = {}
    for version in detail.get("versions", []):
        version["blob"] = states.get(version["version"])

