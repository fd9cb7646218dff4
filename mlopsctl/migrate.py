"""``mlopsctl remote migrate URL``: move the registry's stored blobs to a new artifact remote.

Switching the remote in ``.dvc/config`` alone orphans every version (their blobs stay behind).
Migration copies every blob a registered version names (each through a temp name and a rename,
so a copy is whole or absent), re-reads each copy and checks its md5 (the content address),
carries gc's tombstones over so collected versions stay "collected" rather than "lost", and only
then switches the team's remote, in one commit of ``.dvc/config``. Any lost blob, failed copy or
mismatching copy stops it before the switch: the old remote stays in use, and a re-run copies
only what is still missing. Local-directory targets only, so far.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl import registry as reg
from mlopsctl.blobstate import tagged_manifests, tombstone_path, was_collected
from mlopsctl.errors import CheckFailed, UsageError
from mlopsctl.fsio import file_lock
from mlopsctl.progress import Reporter
from mlopsctl.project import Project
from mlopsctl.store.remote import Remote


@dataclass
class MigrateResult:
    old: str
    new: str
    copied: list[str] = field(default_factory=list)  # md5s copied now
    present: list[str] = field(default_factory=list)  # already in the new remote, verified
    collected: list[str] = field(default_factory=list)  # tombstones carried over
    bytes_copied: int = 0
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "copied": len(self.copied),
                "already_present": len(self.present), "collected": len(self.collected),
                "bytes_copied": self.bytes_copied, "commit": self.commit}


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _blobs(project: Project) -> dict[str, str]:
    """md5 -> 'model@1.2.0' (one of the versions naming it), for every registered version."""
    registry = reg.load(project.root)
    entries = [e for m in registry.models.values() for e in m.versions.values()]
    found: dict[str, str] = {}
    for (model, version), manifest in tagged_manifests(project, entries).items():
        if manifest is not None:
            found.setdefault(manifest.artifact.stored.md5, f"{model}@{version.removeprefix('v')}")
    return found


def migrate(project: Project, url: str, reporter: Reporter | None = None) -> MigrateResult:
    from mlopsctl.initialize import init

    reporter = reporter or Reporter()
    project.require_policy_pin()
    project.require_role("remote")
    old = project.remote
    new = Remote(project.root, old.name, url)
    src, dst = old.local_dir, new.local_dir
    if dst is None or src is None:
        raise UsageError(f"remote migrate supports local-directory remotes only so far "
                         f"({old.url} -> {url})",
                         hint="copy the objects with the storage's tools, then `mlopsctl init "
                         "--remote URL --force` and `mlopsctl verify`")
    if dst.resolve() == src.resolve():
        raise UsageError(f"{url} is the registry's remote already")
    result = MigrateResult(old.describe(), new.describe())
    with file_lock(project.ws.lock_path):
        blobs = _blobs(project)
        lost = sorted(name for md5, name in blobs.items()
                      if not old.exists(md5) and not was_collected(old, md5))
        if lost:
            raise CheckFailed(f"{len(lost)} version(s) have no blob in {old.describe()}: "
                              f"{', '.join(lost)}; nothing was migrated",
                              hint="mlopsctl verify   (lists what is wrong)")
        dst.mkdir(parents=True, exist_ok=True)
        for md5 in sorted(blobs):
            if not old.exists(md5):  # collected by gc: carry the tombstone over
                _copy(tombstone_path(src, md5), tombstone_path(dst, md5))
                result.collected.append(md5)
                continue
            target = new.object_path(md5)
            if target.is_file() and _md5(target) == md5:
                result.present.append(md5)
                continue
            with contextlib.suppress(FileNotFoundError):
                target.unlink()  # a damaged copy from an earlier run
            source = old.object_path(md5)
            reporter.note(f"copying {blobs[md5]}'s blob")
            _copy(source, target, mode=0o444)  # as stored objects are: read-only
            if _md5(target) != md5:
                raise CheckFailed(f"the copy of {blobs[md5]}'s blob in {url} does not match its "
                                  "md5; the remote was not switched",
                                  hint="check the target's disk, then run the migration again")
            result.copied.append(md5)
            result.bytes_copied += source.stat().st_size
    result.commit = init(project.root, remote_url=url, force=True).commit
    return result


def _copy(src: Path, dst: Path, mode: int | None = None) -> None:
    """Copy through a temp name and a rename: ``dst`` is whole or absent."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
