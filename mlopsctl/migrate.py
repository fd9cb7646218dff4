"""``mlopsctl remote migrate URL``: move the registry's stored blobs to a new artifact remote.

Switching the remote in ``.dvc/config`` alone orphans every version (their blobs stay behind).
Migration copies every blob a registered version names (each whole or absent: a temp name and a
rename locally, a completed multipart upload in S3), re-reads each copy from the new remote and
checks its md5 (the content address), carries gc's tombstones over so collected versions stay
"collected" rather than "lost", and only then switches the team's remote, in one commit of
``.dvc/config``. Any lost blob, failed copy or mismatching copy stops it before the switch: the
old remote stays in use, and a re-run copies only what is still missing. Either side may be any
remote DVC reaches (a directory, s3:// with an endpoint, gs://, azure://, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl import registry as reg
from mlopsctl.blobstate import tagged_manifests, was_collected
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


def _blobs(project: Project) -> dict[str, str]:
    """md5 -> 'model@1.2.0' (one of the versions naming it), for every registered version."""
    registry = reg.load(project.root)
    entries = [e for m in registry.models.values() for e in m.versions.values()]
    found: dict[str, str] = {}
    for (model, version), manifest in tagged_manifests(project, entries).items():
        if manifest is not None:
            found.setdefault(manifest.artifact.stored.md5, f"{model}@{version.removeprefix('v')}")
    return found


def _same(old: Remote, new: Remote, endpoint_url: str | None) -> bool:
    src, dst = old.local_dir, new.local_dir
    if src is not None and dst is not None:
        return src.resolve() == dst.resolve()
    if old.url.rstrip("/") != new.url.rstrip("/"):
        return False
    return endpoint_url is None or endpoint_url == _configured_endpoint(old)


def _configured_endpoint(remote: Remote) -> str | None:
    from mlopsctl.store.remote import read_dvc_config

    return read_dvc_config(remote.root).get(f'remote "{remote.name}"', {}).get("endpointurl")


def migrate(project: Project, url: str, reporter: Reporter | None = None,
            endpoint_url: str | None = None) -> MigrateResult:
    from mlopsctl.initialize import init

    reporter = reporter or Reporter()
    project.require_policy_pin()
    project.require_role("remote")
    old = project.remote
    new = Remote(project.root, old.name, url,
                 (("endpointurl", endpoint_url),) if endpoint_url else ())
    if endpoint_url and "://" not in url:
        raise UsageError("--endpoint-url goes with an s3:// remote (S3-compatible stores)")
    if _same(old, new, endpoint_url):
        raise UsageError(f"{url} is the registry's remote already")
    result = MigrateResult(old.describe(), new.describe())
    with file_lock(project.ws.lock_path):
        blobs = _blobs(project)
        stored = old.exists_many(blobs)
        lost = sorted(name for md5, name in blobs.items()
                      if not stored[md5] and not was_collected(old, md5))
        if lost:
            raise CheckFailed(f"{len(lost)} version(s) have no blob in {old.describe()}: "
                              f"{', '.join(lost)}; nothing was migrated",
                              hint="mlopsctl verify   (lists what is wrong)")
        dst = new.local_dir
        if dst is not None:
            dst.mkdir(parents=True, exist_ok=True)
        new.probe()  # a missing bucket or refused credentials: say so before copying anything
        there = new.exists_many(md5 for md5 in blobs if stored[md5])
        for md5 in sorted(blobs):
            if not stored[md5]:  # collected by gc: carry the tombstone over
                record = old.read_tombstone(md5)
                new.write_tombstone(md5, record if record is not None else b"{}\n")
                result.collected.append(md5)
                continue
            if there[md5] and new.stored_md5(md5) == md5:
                result.present.append(md5)
                continue
            reporter.note(f"copying {blobs[md5]}'s blob")
            with _local_copy(old, md5) as source:
                new.replace(source, md5)
                size = source.stat().st_size
            if new.stored_md5(md5) != md5:
                raise CheckFailed(f"the copy of {blobs[md5]}'s blob in {url} does not match its "
                                  "md5; the remote was not switched",
                                  hint="check the target store, then run the migration again")
            result.copied.append(md5)
            result.bytes_copied += size
    result.commit = init(project.root, remote_url=url, force=True,
                         endpoint_url=endpoint_url).commit
    return result


@contextlib.contextmanager
def _local_copy(remote: Remote, md5: str) -> Iterator[Path]:
    """A local file holding the object ``md5``: the object itself in a local remote, else a
    download into DVC's tmp dir (checked against its md5 on the way, removed after)."""
    if remote.direct:
        yield remote.object_path(md5)
        return
    tmpdir = remote.root / ".dvc" / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{md5}.", suffix=".part", dir=tmpdir)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, remote.open(md5) as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise CheckFailed(f"the blob {md5} read from {remote.describe()} does not match its "
                              "md5; nothing was switched",
                              hint="mlopsctl verify   (lists what is wrong)")
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
