"""Retention: which stored blobs the registry still needs, and removing the others (``gc``).

The decision is made from registry state alone (tags, and the manifests committed on the tagged
commits), per model:

- keep the N greatest registered versions (SemVer order, deregistered ones excluded);
- keep every version that holds a stage now;
- keep every version sitting in the blue or the green slot of any environment, as derived from
  the environment's assignment history (``mlopsctl.deploy.derive_slots``): the idle slot is what
  a rollback flips back to;
- everything else may go: its blob is removed from the artifact remote. Tags and manifests are
  never touched, so the history stays whole; ``fetch`` of a collected version fails (exit 3).

Removing a blob leaves a tombstone next to the remote's objects
(``<remote>/mlopsctl-collected/<md5>``, JSON naming the version, when and by whom): it tells
"collected on purpose" apart from "lost" (``push`` refuses to publish lost blobs, not collected
ones). Only local-directory remotes are supported for now.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import registry as reg
from mlopsctl.errors import CheckFailed, EnvironmentProblem, MlopsError, UsageError
from mlopsctl.gitops import tags as T
from mlopsctl.project import Project

DEFAULT_KEEP_LAST = 5
TOMBSTONE_DIR = "mlopsctl-collected"

# Blob states, as `blob_states` reports them and `show` displays them.
STORED = "stored"
COLLECTED = "collected"  # removed by gc (a tombstone says so)
MISSING = "missing"  # absent, and no tombstone: never uploaded, or lost


# --- manifests of many versions in one git call -------------------------------------------------


def tagged_manifests(project: Project, entries: list[reg.VersionEntry]
                     ) -> dict[tuple[str, str], mf.VersionManifest | None]:
    """(model, 'v1.2.0') -> the manifest committed on the version's tagged commit (the immutable
    truth), or None when that commit has none (a version registered by another tool) or it does
    not parse. One ``git cat-file --batch`` for all of them."""
    from mlopsctl.gitops.git import git

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


# --- tombstones -----------------------------------------------------------------------------------


def tombstone_path(base: Path, md5: str) -> Path:
    return base / TOMBSTONE_DIR / md5


def was_collected(remote: Any, md5: str) -> bool:
    """Whether gc removed ``md5`` from this (local-directory) remote on purpose."""
    base = remote.local_dir
    return base is not None and tombstone_path(base, md5).is_file()


def _write_tombstone(base: Path, md5: str, model: str, version: str, actor: str) -> None:
    from mlopsctl.fsio import atomic_write

    doc = {"md5": md5, "model": model, "version": version.removeprefix("v"), "by": actor,
           "collected_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    atomic_write(tombstone_path(base, md5), (json.dumps(doc, sort_keys=True) + "\n").encode())


# --- what to keep (pure) --------------------------------------------------------------------------


def keep_reasons(state: reg.ModelState, keep_last: int) -> dict[str, list[str]]:
    """'v1.2.0' -> why it must be kept, for every version the rules keep."""
    from mlopsctl.deploy import derive_slots

    reasons: dict[str, list[str]] = {}

    def keep(version: str | None, why: str) -> None:
        if version:
            reasons.setdefault(version, []).append(why)

    if keep_last > 0:
        for entry in state.active_versions[-keep_last:]:
            keep(entry.version, f"latest {keep_last}")
    for env, event in sorted(state.stages.items()):
        keep(event.version, f"holds {env}")
    envs = sorted({e.stage for e in state.events if e.kind == T.ASSIGN and e.stage})
    for env in envs:
        holder = state.stages.get(env)
        plan = derive_slots(state.name, env, state.assigned(env),
                            holder.version if holder else None)
        for slot, version in plan.slots.items():
            if version is None:
                continue
            live = " (live)" if plan.live_slot == slot else ""
            keep(version, f"{env} {slot} slot{live}")
    return reasons


# --- gc -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    model: str
    version: str  # 'v1.2.0'
    md5: str | None = None
    size: int = 0  # stored (compressed, encrypted) size
    reasons: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.model}@{self.version.removeprefix('v')}"

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version.removeprefix("v"), "md5": self.md5,
                "stored_size": self.size, "reasons": list(self.reasons)}


@dataclass
class GcResult:
    keep_last: int
    dry_run: bool
    remote: str
    kept: list[Item] = field(default_factory=list)
    removed: list[Item] = field(default_factory=list)  # or, with dry_run, would be removed
    already_gone: list[Item] = field(default_factory=list)
    no_blob: list[Item] = field(default_factory=list)  # no mlopsctl manifest: nothing stored
    notes: list[str] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(i.size for i in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "keep_last": self.keep_last, "remote": self.remote,
            "removed": [i.to_json() for i in self.removed], "freed_bytes": self.freed,
            "kept": [i.to_json() for i in self.kept],
            "already_gone": [i.to_json() for i in self.already_gone],
            "no_blob": [i.to_json() for i in self.no_blob], "notes": list(self.notes),
        }


def _local_base(project: Project) -> Path:
    remote = project.remote
    base: Path | None = remote.local_dir
    if base is None:
        raise UsageError(
            f"gc does not support remote {remote.describe()} yet: only local-directory artifact "
            "remotes can be collected so far",
            hint="nothing was removed; remove unneeded objects with the storage's own tools",
        )
    return base


def _origin_tags(project: Project, result: GcResult) -> None:
    """Bring the team's registry tags from ``origin`` first, so gc decides on the team's state."""
    from mlopsctl.gitops.git import GitFailed, git
    from mlopsctl.teamsync import fetch_tags

    try:
        remotes = git(project.root, "remote").decode().split()
    except GitFailed:
        remotes = []
    if "origin" not in remotes:
        return
    try:
        fetched = fetch_tags(project.root, "origin")
    except EnvironmentProblem as exc:
        result.notes.append(f"could not fetch registry tags from origin ({exc.message}); "
                            "deciding on this clone's registry only")
        return
    if fetched.new:
        result.notes.append(f"fetched {len(fetched.new)} registry tags from origin: "
                            + ", ".join(fetched.new[:5]) + ("..." if len(fetched.new) > 5 else ""))
    if fetched.conflicts:
        names = ", ".join(c.tag for c in fetched.conflicts)
        if not result.dry_run:
            raise CheckFailed(
                f"registry tags differ between this clone and origin: {names}; gc will not "
                "decide on a registry that disagrees with the team's",
                hint="mlopsctl pull   (it explains each conflict), then run gc again",
            )
        result.notes.append(f"warning: registry tags differ from origin's: {names} "
                            "(`mlopsctl pull` explains; a real run refuses)")


def gc(project: Project, keep_last: int = DEFAULT_KEEP_LAST, dry_run: bool = False,
       fetch_origin: bool = True) -> GcResult:
    """Remove (or, with ``dry_run``, list) the stored blobs the retention rules do not keep."""
    from mlopsctl.fsio import file_lock

    if keep_last < 1:
        raise UsageError("--keep-last must be at least 1")
    if not dry_run:
        project.require_policy_pin()
    base = _local_base(project)
    result = GcResult(keep_last, dry_run, project.remote.describe())
    with file_lock(project.ws.lock_path):
        if fetch_origin:
            _origin_tags(project, result)
        registry = reg.load(project.root)
        entries = [e for m in registry.models.values() for e in m.versions.values()]
        manifests = tagged_manifests(project, entries)
        actor = _actor(project.root)
        for state in registry.models.values():
            reasons = keep_reasons(state, keep_last)
            kept_md5 = set()
            candidates: list[Item] = []
            for entry in sorted(state.versions.values(), key=lambda v: v.semver.sort_key(),
                                reverse=True):
                manifest = manifests.get((entry.model, entry.version))
                stored = manifest.artifact.stored if manifest else None
                item = Item(entry.model, entry.version, stored.md5 if stored else None,
                            stored.size if stored else 0, tuple(reasons.get(entry.version, ())))
                if stored is None:
                    result.no_blob.append(item)
                elif item.reasons:
                    result.kept.append(item)
                    kept_md5.add(stored.md5)
                else:
                    candidates.append(item)
            for item in candidates:
                assert item.md5 is not None
                path = base / "files" / "md5" / item.md5[:2] / item.md5[2:]
                if item.md5 in kept_md5:  # the same object serves a kept version too
                    result.kept.append(Item(item.model, item.version, item.md5, item.size,
                                            ("blob shared with a kept version",)))
                elif not path.is_file():
                    result.already_gone.append(item)
                else:
                    if not dry_run:
                        _write_tombstone(base, item.md5, item.model, item.version, actor)
                        try:
                            os.unlink(path)
                        except FileNotFoundError:
                            result.already_gone.append(item)
                            continue
                    result.removed.append(item)
    return result


def _actor(root: Path) -> str:
    from mlopsctl.gitops.identity import find_identity

    identity = find_identity(root)
    return str(identity) if identity else "unknown"


# --- what show needs ----------------------------------------------------------------------------


def blob_states(project: Project, model: str) -> dict[str, str | None]:
    """'v1.2.0' -> STORED / COLLECTED / MISSING for every registered version of ``model`` whose
    blob lives in a directly-read local remote; None where it cannot be told cheaply (no
    manifest, or a cloud remote)."""
    state = reg.load(project.root).model(model)
    if state is None:
        return {}
    remote = project.remote
    entries = list(state.versions.values())
    if not remote.direct:
        return {e.version: None for e in entries}
    manifests = tagged_manifests(project, entries)
    out: dict[str, str | None] = {}
    for entry in entries:
        manifest = manifests.get((entry.model, entry.version))
        if manifest is None:
            out[entry.version] = None
            continue
        md5 = manifest.artifact.stored.md5
        if remote.exists(md5):
            out[entry.version] = STORED
        else:
            out[entry.version] = COLLECTED if was_collected(remote, md5) else MISSING
    return out


def collected(project: Project, model: str) -> set[str]:
    """Versions of ``model`` ('v1.2.0', as `show` names them) whose blob is gone from a direct
    local remote: collected by gc, or otherwise missing."""
    return {v for v, s in blob_states(project, model).items() if s in (COLLECTED, MISSING)}


def mark_collected(ws: Any, detail: dict[str, Any]) -> None:
    """For ``show MODEL``: set ``"blob"`` on every version of a ``views.model_detail`` document to
    "stored", "collected", "missing" or None (unknown). Never fails: a repository without an
    mlopsctl config or remote just gets None everywhere."""
    from mlopsctl.gitops.git import GitFailed

    try:
        states = blob_states(Project.open(ws.root), str(detail["model"]))
    except (MlopsError, GitFailed, OSError):
        states = {}
    for version in detail.get("versions", []):
        version["blob"] = states.get(version["version"])
