"""Fetching and verifying stored artifacts: decrypt, decompress and hash in one pass, and only
a matching sha256 ever reaches the destination."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlopsctl import manifests as mf
from mlopsctl import registry as reg
from mlopsctl.blobstate import tagged_manifests, tombstone
from mlopsctl.errors import MlopsError, UsageError
from mlopsctl.fsio import sha256_file
from mlopsctl.progress import Reporter
from mlopsctl.project import Project, parse_ref


@dataclass(frozen=True)
class Resolved:
    entry: reg.VersionEntry
    manifest: mf.VersionManifest


def resolve(project: Project, registry: reg.Registry, ref: str) -> Resolved:
    """``model@1.2.0`` / ``model@latest`` / ``model#stage`` / ``model`` -> a registered version
    with its manifest."""
    model, version, stage = parse_ref(ref)
    state = registry.model(model)
    if state is None:
        raise UsageError(f"unknown model '{model}'", hint="mlopsctl show")
    entry: reg.VersionEntry | None
    if stage:
        assignment = state.stages.get(stage)
        if assignment is None or assignment.version not in state.versions:
            raise UsageError(f"{model} has no version in '{stage}'", hint=f"mlopsctl show {model}")
        entry = state.versions[assignment.version]
    elif version and version != "latest":
        entry = state.versions.get(f"v{version}")
        if entry is None:
            raise UsageError(f"model '{model}' has no version {version}",
                             hint=f"mlopsctl show {model}")
    else:
        entry = state.latest
        if entry is None:
            raise UsageError(f"model '{model}' has no registered version")
    manifest = project.manifest_at(model, entry.version, entry.commit)
    if manifest is None:
        asked = f"{model}@{entry.number}" if version and version != "latest" else (
            f"{ref} resolves to {model}@{entry.number}, which")
        hint = "only versions registered with `mlopsctl bump` carry an artifact to fetch"
        if not (version and version != "latest") and not stage:
            usable = _latest_with_manifest(project, state)
            if usable:
                hint = f"the latest version with an artifact is {usable}: mlopsctl fetch {usable}"
        raise UsageError(
            f"{asked} was registered by another tool (gto or a hand-made tag) without an "
            "mlopsctl manifest: there is no stored artifact to fetch", hint=hint)
    return Resolved(entry, manifest)


def _latest_with_manifest(project: Project, state: reg.ModelState) -> str | None:
    """'model@1.2.0' of the greatest registered version that has a manifest, or None."""
    entries = state.active_versions
    found = tagged_manifests(project, entries)
    for entry in reversed(entries):
        if found.get((entry.model, entry.version)) is not None:
            return f"{entry.model}@{entry.number}"
    return None


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _restore(project: Project, manifest: mf.VersionManifest, dst: object,
             reporter: Reporter) -> None:
    from mlopsctl.store.pipeline import decrypt_file

    stored = manifest.artifact.stored
    pointer = project.ws.pointer_path(manifest.model, manifest.version)
    key = project.key()
    what = f"{manifest.model}@{manifest.version}"
    with project.remote.open(stored.md5, pointer, what) as src:
        reporter.start(f"restoring {what}", stored.size)
        try:
            decrypt_file(src, dst, key=key, key_id=stored.key_id or "",  # type: ignore[arg-type]
                         model=manifest.model, version=manifest.version,
                         expected_sha256=manifest.artifact.sha256,
                         expected_size=manifest.artifact.size, progress=reporter.advance)
        finally:
            reporter.stop()


def restore_to(project: Project, manifest: mf.VersionManifest, dest: Path,
               reporter: Reporter | None = None) -> None:
    """Write a verified copy of the version's artifact to ``dest`` (a temp file first)."""
    reporter = reporter or Reporter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a fetched file is ordinary
        with os.fdopen(fd, "wb") as fh:
            # No fsync: a restored copy can always be fetched again, and rename-over-write is
            # ordered by the filesystem (ext4, xfs, btrfs) so no empty file survives a crash.
            _restore(project, manifest, fh, reporter)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def restore_into(project: Project, manifest: mf.VersionManifest, fh: IO[bytes],
                 reporter: Reporter | None = None) -> None:
    """Write a verified copy of the artifact into an open file (an unnamed one, for a worker):
    a mismatching sha256 raises before anyone reads it."""
    fh.seek(0)
    fh.truncate()
    _restore(project, manifest, fh, reporter or Reporter())
    fh.flush()
    fh.seek(0)


@dataclass(frozen=True)
class FetchResult:
    model: str
    version: str
    path: Path
    sha256: str
    size: int
    unchanged: bool


def fetch(project: Project, ref: str, out: Path | None = None, force: bool = False,
          reporter: Reporter | None = None) -> FetchResult:
    reporter = reporter or Reporter()
    project.remote  # noqa: B018 - fail early on a missing remote
    resolved = resolve(project, reg.load(project.root), ref)
    manifest = resolved.manifest
    art = manifest.artifact
    dest = Path(out) if out else Path.cwd() / Path(art.path).name
    if dest.is_dir():
        dest = dest / Path(art.path).name
    result = FetchResult(manifest.model, manifest.version, dest, art.sha256, art.size, False)
    if dest.exists():
        if dest.is_file() and sha256_file(dest) == art.sha256:
            return FetchResult(result.model, result.version, dest, art.sha256, art.size, True)
        if not force:
            raise UsageError(f"{dest} exists and holds other bytes",
                             hint="pass -o PATH to write elsewhere, or --force to replace it")
    restore_to(project, manifest, dest, reporter)
    return result


@dataclass(frozen=True)
class VersionCheck:
    model: str
    version: str
    ok: bool
    problem: str = ""
    skipped: bool = False


def verify(project: Project, target: str | None = None,
           reporter: Reporter | None = None) -> list[VersionCheck]:
    """Re-check stored artifacts end to end: every version of every model, of one model, or one
    version."""
    reporter = reporter or Reporter()
    registry = reg.load(project.root)
    entries: list[reg.VersionEntry]
    if target is None:
        entries = [v for m in registry.models.values() for v in m.active_versions]
    else:
        model, version, stage = parse_ref(target)
        state = registry.model(model)
        if state is None:
            raise UsageError(f"unknown model '{model}'", hint="mlopsctl show")
        if version or stage:
            entries = [resolve(project, registry, target).entry]
        else:
            entries = state.active_versions
    checks = []
    for entry in entries:
        manifest = project.manifest_at(entry.model, entry.version, entry.commit)
        if manifest is None:
            checks.append(VersionCheck(entry.model, entry.number, True,
                                       "no manifest: registered by another tool", skipped=True))
            continue
        stored = manifest.artifact.stored
        if not project.remote.exists(stored.md5):
            gone = tombstone(project.remote, stored.md5)
            if gone is not None:  # removed by gc on purpose: not a failure
                when = f" on {str(gone['collected_at'])[:10]}" if gone.get("collected_at") else ""
                checks.append(VersionCheck(entry.model, entry.number, True,
                                           f"collected by gc{when}: blob removed on purpose",
                                           skipped=True))
                continue
        try:
            _restore(project, manifest, None, reporter)
        except MlopsError as exc:
            checks.append(VersionCheck(entry.model, entry.number, False, exc.message))
        else:
            checks.append(VersionCheck(entry.model, entry.number, True))
    return checks
