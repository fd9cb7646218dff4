"""Registering versions: the service behind ``mlopsctl bump`` and ``MLOpsManager``.

Order of effects, so a crash at any point leaves no tag without its data:
stream the artifact to a staging blob -> (under the repo lock) publish the blob to the remote ->
commit manifest + pointer + card -> create the tag ``MODEL@vX.Y.Z`` (compare-and-swap).
A lost race for a version number re-plans the next number and re-seals the blob, since the
version is bound into the blob's authentication data.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import registry as reg
from mlopsctl import semver
from mlopsctl.errors import ConflictError, EnvironmentProblem, UsageError
from mlopsctl.fsio import atomic_write, file_lock, sha256_file
from mlopsctl.gitops import refs
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.identity import Identity, repo_busy
from mlopsctl.headstart import HeadStart, plan_version, seal_inputs
from mlopsctl.lineage import data_hash
from mlopsctl.progress import Reporter
from mlopsctl.project import Project
from mlopsctl.workspace import MLOPS_DIR

MAX_ATTEMPTS = 8

FORMATS = {
    ".pkl": "sklearn-pickle",
    ".pickle": "sklearn-pickle",
    ".joblib": "joblib",
    ".skops": "skops",
    ".onnx": "onnx",
}


@dataclass
class BumpRequest:
    model: str
    artifact: Path | None = None
    part: str | None = None  # major / minor / patch; default minor
    version: str | None = None  # explicit
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    data: Sequence[Path] = ()
    config_file: Path | None = None
    message: str = ""
    card: dict[str, Any] = field(default_factory=dict)  # model card fields to set
    holdout: Path | None = None
    target: str | None = None


@dataclass(frozen=True)
class BumpResult:
    manifest: mf.VersionManifest
    tag: str
    commit: str
    retries: int


MAX_VERSION_LENGTH = 128


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A JSON or YAML file holding a mapping (metrics, params)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{what} file {path} does not exist") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json and yaml raise different types
        raise UsageError(f"{what} file {path} cannot be parsed: {exc}") from None
    if not mf.check_expansion(text, data):
        raise UsageError(f"{what} file {path}: its YAML aliases expand to more than "
                         f"{mf.MAX_YAML_VALUES:,} values (an alias bomb?)",
                         hint="write the values out without anchors and aliases")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} file {path} must hold a mapping of names to values")
    return data


def read_metrics(path: Path) -> dict[str, float]:
    flat: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"metric '{prefix}' in {path} is not a number: {value!r}")
        else:
            flat[prefix] = float(value)

    walk("", read_mapping(path, "metrics"))
    return flat


def _file_hash(root: Path, path: Path, what: str) -> mf.FileHash:
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist or is not a file")
    return mf.FileHash(path=_display_path(root, path), sha256=sha256_file(path))


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _display_path(root: Path, path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return resolved.name


def _plan(registry: reg.Registry, req: BumpRequest) -> tuple[semver.Version, str | None]:
    """(version to register, parent version) from the registry and the request."""
    return plan_version(registry, req.model, req.version, req.part)


def _tag_message(manifest: mf.VersionManifest, actor: Identity) -> str:
    title = f"Register {manifest.model} v{manifest.version}"
    if manifest.message:
        title += f": {manifest.message.splitlines()[0]}"
    data = {
        reg.DATA_KEY: {
            "schema_version": mf.SCHEMA_VERSION,
            "event": "register",
            "actor": str(actor),
            "model": manifest.model,
            "version": manifest.version,
            "parent_version": manifest.parent_version,
            "artifact_sha256": manifest.artifact.sha256,
            "policy_hash": manifest.policy_hash,
        }
    }
    return f"{title}\n\n{mf.dump_data(data)}"


def check_inputs(root: Path, req: BumpRequest, card: mf.ModelCard | None) -> Path:
    """The artifact to register (given, or remembered by the card), once every flag and input
    file of ``req`` is known to be usable: what ``bump`` and ``bump --dry-run`` both refuse."""
    artifact = req.artifact
    if artifact is None and card and card.artifact:
        artifact = root / card.artifact
    if artifact is None:
        raise UsageError(f"no artifact given for {req.model}",
                         hint=f"mlopsctl bump {req.model} --artifact PATH")
    artifact = Path(artifact)
    if not artifact.is_file():
        raise UsageError(f"artifact {artifact} does not exist or is not a file")
    if req.part and req.version:
        raise UsageError("give either --version or one of --major/--minor/--patch, not both")
    if req.version and len(req.version) > MAX_VERSION_LENGTH:
        # It names files (manifest, pointer, staged blob) and a tag ref: keep it well under
        # the 255-byte file name limit.
        raise UsageError(f"--version is {len(req.version)} characters long; at most "
                         f"{MAX_VERSION_LENGTH} are allowed", hint="use a shorter version")
    if req.holdout is not None:
        if not req.target:
            raise UsageError("--holdout needs --target COLUMN")
        if not Path(req.holdout).is_file():
            raise UsageError(f"holdout file {req.holdout} does not exist")
    return artifact


def bump(project: Project, req: BumpRequest, reporter: Reporter | None = None,
         head: HeadStart | None = None) -> BumpResult:
    """Register the next version of ``req.model``. ``head``, a head start the command made
    (mlopsctl.headstart), is used if it sealed exactly what this bump would seal."""
    reporter = reporter or Reporter()
    T.check_name(req.model)
    ws = project.ws
    root = project.root
    policy_hash = project.require_policy_pin()
    actor = project.require_role("bump")  # registering a version
    busy = repo_busy(root, ws.git_dir)
    if busy:
        raise EnvironmentProblem(f"{busy} is in progress", hint="finish or abort it first")
    refs.current_branch(root)

    card = project.card(req.model)
    artifact = check_inputs(root, req, card)
    data_hashes = [data_hash(root, Path(p)) for p in req.data]
    config_hash = _file_hash(root, req.config_file, "config file") if req.config_file else None
    remote = project.remote
    key = project.key()
    kid = project.config.encryption.key_id or ""
    level = project.config.compression.level

    version, parent = _plan(reg.load(root), req)
    staging = remote.staging_dir()
    _sweep_staging(staging)
    for attempt in range(MAX_ATTEMPTS):
        blob_path = staging / f"{T.path_part(req.model)}-{version}-{os.getpid()}.blob"
        try:
            early = head.claim(seal_inputs(artifact, key, kid, req.model, str(version), level,
                                           staging), reporter) if head else None
            if early is not None:
                blob_path, stored = early
            else:
                stored = _seal(artifact, blob_path, key, kid, req.model, str(version), level,
                               reporter)
            with file_lock(ws.lock_path, on_wait=lambda: reporter.note("waiting for another "
                                                                        "mlopsctl process...")):
                registry = reg.load(root)
                if version.tag in registry.taken_versions(req.model):
                    if req.version:
                        raise ConflictError(
                            f"{req.model} v{version} was registered by another process meanwhile",
                            hint=f"mlopsctl show {req.model}",
                        )
                    version, parent = _plan(registry, req)
                    continue
                refs.repair_index(root)
                try:
                    return _publish(project, req, actor, artifact, stored, blob_path, version,
                                    parent, data_hashes, config_hash, policy_hash, attempt)
                except ConflictError:
                    if req.version:
                        raise
                    version, parent = _plan(reg.load(root), req)
        finally:
            with contextlib.suppress(FileNotFoundError):
                blob_path.unlink()
    raise ConflictError(f"gave up registering {req.model} after {MAX_ATTEMPTS} lost races",
                        hint="run the command again")


def _sweep_staging(staging: Path) -> None:
    """Remove blobs left in the staging dir by bumps that were killed (their pid is gone)."""
    for blob in staging.glob("*.blob"):
        try:
            pid = int(blob.stem.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError):
            with contextlib.suppress(FileNotFoundError):
                blob.unlink()
        except PermissionError:
            pass  # another user's live process


def _seal(artifact: Path, dest: Path, key: bytes, kid: str, model: str, version: str,
          level: int, reporter: Reporter):
    from mlopsctl.store.pipeline import seal_file

    reporter.start(f"sealing {artifact.name}", artifact.stat().st_size)
    try:
        return seal_file(artifact, dest, key=key, key_id=kid, model=model, version=version,
                         level=level, progress=reporter.advance)
    finally:
        reporter.stop()


def _publish(project: Project, req: BumpRequest, actor: Identity, artifact: Path, stored: Any,
             blob_path: Path, version: semver.Version, parent: str | None,
             data_hashes: list[mf.FileHash], config_hash: mf.FileHash | None,
             policy_hash: str, attempt: int) -> BumpResult:
    """Under the lock: remote first, then the commit, then the tag."""
    from mlopsctl.store.remote import pointer_text

    ws, root = project.ws, project.root
    number = str(version)
    pointer = ws.pointer_path(req.model, number)
    pointer_bytes = pointer_text(f"{number}.zst", stored.md5, stored.stored_size)
    atomic_write(pointer, pointer_bytes, durable=False)  # rewritten, then committed
    project.remote.put(blob_path, stored.md5, pointer)

    head = refs.head_commit(root)
    dirty = _is_dirty(root)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    manifest = mf.VersionManifest(
        model=req.model,
        version=number,
        parent_version=parent,
        created_at=now.isoformat().replace("+00:00", "Z"),
        created_by=str(actor),
        message=req.message,
        artifact=mf.ArtifactInfo(
            path=_display_path(root, artifact),
            format=FORMATS.get(artifact.suffix.lower(), "binary"),
            sha256=stored.sha256,
            size=stored.size,
            stored=mf.Stored(codec="zstd", level=project.config.compression.level,
                             cipher=project.config.encryption.cipher,
                             key_id=project.config.encryption.key_id, size=stored.stored_size,
                             md5=stored.md5),
        ),
        config_file=config_hash,
        metrics=req.metrics,
        lineage=mf.Lineage(code_commit=head, code_dirty=dirty, data=data_hashes,
                           params=req.params),
        policy_hash=policy_hash,
    )
    files: dict[str, bytes] = {
        ws.rel(ws.manifest_path(req.model, number)): mf.dump(manifest),
        ws.rel(pointer): pointer_bytes,
    }
    card = project.card(req.model)
    before = mf.dump(card) if card else b""
    card = card or mf.ModelCard(name=req.model, owner=actor.email)
    if not card.artifact and _inside(root, artifact):
        card.artifact = _display_path(root, artifact)  # remembered for `bump` without --artifact
    for key, value in req.card.items():
        setattr(card, key, value)
    if req.holdout is not None:
        card.holdout = mf.Holdout(path=_display_path(root, req.holdout), target=req.target or "")
    if mf.dump(card) != before:
        files[ws.rel(ws.card_path(req.model))] = mf.dump(card)

    commit_msg = f"mlopsctl: register {req.model} v{number}"
    if req.message:
        commit_msg += f"\n\n{req.message}"
    commit = refs.commit_files(root, files, commit_msg, head)
    refs.sync_worktree(root, files)  # at once: the index must not lag behind the branch
    tag = T.format_tag(T.TagEvent(T.REGISTER, req.model, version.tag))
    try:
        from mlopsctl.signing import should_sign

        refs.create_tag(root, tag, commit, _tag_message(manifest, actor),
                        sign=should_sign(project.config, root))
    except ConflictError:
        # Someone created the tag outside our lock: undo our commit if nobody built on it.
        branch = refs.current_branch(root)
        if head and refs.move_ref_back(root, branch, head, commit):
            refs.unstage(root, head, list(files))
            refs.remove_untracked(root, head, list(files))
        raise
    return BumpResult(manifest, tag, commit, attempt)


def _is_dirty(root: Path) -> bool:
    """Whether the code has uncommitted changes (tracked files outside the registry's own
    ``.mlops/``: at 100,000 versions, 200,000 files git need not look at)."""
    from mlopsctl.gitops.git import git

    out = git(root, "status", "--porcelain", "--untracked-files=no", "--ignore-submodules",
              "--", ".", f":(exclude){MLOPS_DIR}")
    return bool(out.strip())


