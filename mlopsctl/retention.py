"""Retention: which stored blobs the registry still needs, and removing the others (``gc``).

The decision is made from registry state alone (tags, and the manifests committed on the tagged
commits), per model:

- keep the N greatest registered versions (SemVer order, deregistered ones excluded);
- keep every version that holds a stage now;
- keep every version sitting in the blue or the green slot of any environment, as derived from
  the environment's assignment history (``mlopsctl.deploy.derive_slots``): the idle slot is what
  a rollback flips back to;
- everything else may go: its blob is removed from the artifact remote, and its ``.dvc``
  pointer from the branch, in one commit (so `dvc pull` in a fresh clone asks only for blobs
  that exist). Tags, manifests and the tagged commits are never touched, so the history stays
  whole; ``fetch`` of a collected version fails (exit 3) and ``verify`` reports it as collected.

Removing a blob leaves a tombstone next to the remote's objects
(``<remote>/mlopsctl-collected/<md5>``, JSON naming the version, when and by whom), written
before the blob is removed: it tells "collected on purpose" apart from "lost" (``push`` refuses
to publish lost blobs, not collected ones). Any remote DVC reaches works the same way: a local
directory in place, S3, GCS, Azure, SSH ... through ``Remote``'s store.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlopsctl import registry as reg
from mlopsctl.blobstate import tagged_manifests, was_collected
from mlopsctl.deploy import derive_slots
from mlopsctl.errors import CheckFailed, EnvironmentProblem, MlopsError, UsageError
from mlopsctl.gitops import refs
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.git import GitFailed, git
from mlopsctl.project import Project
from mlopsctl.store.remote import Remote
from mlopsctl.teamsync import fetch_tags

DEFAULT_KEEP_LAST = 5


# --- tombstones -----------------------------------------------------------------------------------


def _write_tombstone(remote: Remote, md5: str, model: str, version: str, actor: str) -> None:
    doc = {"md5": md5, "model": model, "version": version.removeprefix("v"), "by": actor,
           "collected_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    remote.write_tombstone(md5, (json.dumps(doc, sort_keys=True) + "\n").encode())


# --- what to keep (pure) --------------------------------------------------------------------------


def keep_reasons(state: reg.ModelState, keep_last: int) -> dict[str, list[str]]:
    """'v1.2.0' -> why it must be kept, for every version the rules keep."""
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
    pointers: list[str] = field(default_factory=list)  # .dvc pointers dropped (or to drop)
    commit: str | None = None  # the commit dropping them

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
            "pointers_removed": list(self.pointers), "commit": self.commit,
        }


def _origin_tags(project: Project, result: GcResult) -> None:
    """Bring the team's registry tags from ``origin`` first, so gc decides on the team's state."""
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
        project.require_role("gc")
    remote = project.remote
    result = GcResult(keep_last, dry_run, remote.describe())
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
            present = remote.exists_many(i.md5 for i in candidates if i.md5 not in kept_md5)
            for item in candidates:
                assert item.md5 is not None
                if item.md5 in kept_md5:  # the same object serves a kept version too
                    result.kept.append(Item(item.model, item.version, item.md5, item.size,
                                            ("blob shared with a kept version",)))
                elif not present[item.md5]:
                    result.already_gone.append(item)
                else:
                    if not dry_run:
                        # The tombstone first: a crash in between leaves a blob that is
                        # still there (and stays in use), never one gone without a record.
                        _write_tombstone(remote, item.md5, item.model, item.version, actor)
                        if not remote.remove(item.md5):
                            result.already_gone.append(item)
                            continue
                    result.removed.append(item)
        _drop_pointers(project, result)
    return result


def _drop_pointers(project: Project, result: GcResult) -> None:
    """Commit the removal of the collected versions' ``.dvc`` pointers from the branch, so that
    ``dvc pull`` in any clone (a fresh one first) asks only for blobs that exist. The tagged
    commits keep their pointers: the history stays whole."""
    ws = project.ws
    collected = [i for i in result.removed + result.already_gone
                 if i.md5 and ((result.dry_run and i in result.removed)
                               or was_collected(project.remote, i.md5))]
    try:
        head = refs.head_commit(project.root)
        tracked = set(git(project.root, "ls-tree", "-r", "--name-only", "HEAD", "--",
                          ws.rel(ws.mlops / "models")).decode().splitlines()) if head else set()
    except GitFailed:
        return
    paths = sorted({ws.rel(ws.pointer_path(i.model, i.version.removeprefix("v")))
                    for i in collected} & tracked)
    result.pointers = paths
    if not paths or result.dry_run:
        return
    try:
        refs.current_branch(project.root)
    except MlopsError:
        result.notes.append("HEAD is detached: the collected versions' .dvc pointers stay "
                            "(check out a branch and run gc again to drop them)")
        result.pointers = []
        return
    names = ", ".join(i.name for i in collected)
    result.commit = refs.commit_files(
        project.root, {}, f"mlopsctl: gc drops the .dvc pointers of collected versions\n\n"
        f"Their blobs were removed from the artifact remote: {names}.\n", head, remove=paths)
    refs.sync_worktree(project.root, {}, remove=paths)
    for rel in paths:  # a copy `dvc pull` restored next to the pointer
        with contextlib.suppress(FileNotFoundError):
            os.unlink(project.root / rel.removesuffix(".dvc"))


def _actor(root: Path) -> str:
    from mlopsctl.gitops.identity import find_identity

    identity = find_identity(root)
    return str(identity) if identity else "unknown"
