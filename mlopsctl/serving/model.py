"""A served version: fetched through the verified restore path, loaded and smoke-tested in the
sandboxed worker, then loaded here with the same safe loader; and the checks that turn a
request's ``instances`` into a feature matrix."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, IntegrityError
from mlopsctl.fsio import sha256_file
from mlopsctl.loading.pace import paced
from mlopsctl.loading.sandbox import Limits, fd_path, run_worker, unnamed_file
from mlopsctl.project import Project
from mlopsctl.serving.smoke import describe, quiet_feature_name_warning

SMOKE_TIMEOUT_S = 300.0  # as promote's smoke test: the worker's wall-clock limit
# The worker's CPU priority: on a busy machine its work waits, not the requests.
WORKER_NICE = 19


class BadRequest(Exception):
    """The request is malformed; the message says how (answered with a 4xx, never a crash)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class LoadFailed(Exception):
    """A version could not be made servable; the message says why."""


@dataclass(eq=False)
class Loaded:
    """One version, ready to answer. Immutable once built (the follower builds a new one)."""

    model: str
    version: str  # '1.2.0'
    sha256: str
    estimator: Any
    n_features: int | None
    feature_names: tuple[str, ...] | None
    loaded_at: str = field(default_factory=lambda: _now())
    children: dict[str, Any] = field(default_factory=dict)  # metric children for this version

    def matrix(self, instances: Any) -> Any:
        """The request's rows as a 2-D float array; BadRequest says what is wrong."""
        import numpy as np

        if not isinstance(instances, list) or not instances:
            raise BadRequest('"instances" must be a non-empty list of rows')
        if isinstance(instances[0], dict):
            instances = self._rows_from_objects(instances)
        elif not all(isinstance(row, list) for row in instances):
            raise BadRequest("each instance must be a list of numbers or an object keyed by "
                             "feature name (all of one kind)")
        try:
            x = np.asarray(instances, dtype=np.float64)
        except (ValueError, TypeError):
            raise BadRequest("instances must hold numbers only, every row of the same "
                             "length") from None
        if x.ndim != 2:
            raise BadRequest("each instance must be a flat list of numbers")
        if self.n_features is not None and x.shape[1] != self.n_features:
            raise BadRequest(f"{self.model} {self.version} expects {self.n_features} features "
                             f"per row, got {x.shape[1]}")
        return x

    def _rows_from_objects(self, instances: list[Any]) -> list[list[Any]]:
        names = self.feature_names
        if names is None:
            raise BadRequest(f"{self.model} {self.version} has no recorded feature names: "
                             "send rows as lists of numbers")
        wanted = set(names)
        rows = []
        for i, obj in enumerate(instances):
            if not isinstance(obj, dict):
                raise BadRequest("instances must all be lists or all be objects")
            if obj.keys() != wanted:
                missing = sorted(wanted - obj.keys())[:5]
                unknown = sorted(map(str, obj.keys() - wanted))[:5]
                parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                    [f"unknown {', '.join(unknown)}"] if unknown else [])
                raise BadRequest(f"instance {i}: {'; '.join(parts)} (expected the "
                                 f"{len(names)} features of {self.model} {self.version})")
            rows.append([obj[n] for n in names])
        return rows

    def predict(self, x: Any) -> list[Any]:
        out = self.estimator.predict(x)
        return out.tolist() if hasattr(out, "tolist") else list(out)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def safe_load(path: Path, fmt: str, trusted: Sequence[str] = ()) -> Any:
    """The one call into the safe loader (the same one validation uses), with the policy's
    ``trusted_types``."""
    from mlopsctl.loading import load_model

    return load_model(path, fmt, trusted)


def _holdout_header(root: Path, card: mf.ModelCard | None) -> tuple[Path | None, list[str]]:
    if card is None or card.holdout is None:
        return None, []
    path = root / card.holdout.path
    try:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None, []
    return path, [h for h in header if h != card.holdout.target]


def load_from_registry(project: Project, manifest: mf.VersionManifest) -> Loaded:
    """Fetch (sha256 verified), check in the worker, load safely. LoadFailed says why not."""
    from mlopsctl.artifacts import restore_into
    from mlopsctl.errors import MlopsError
    from mlopsctl.validation import trusted_types, worker_limits

    holdout, header = _holdout_header(project.root, project.card(manifest.model))
    try:
        trusted, where = trusted_types(project)
    except MlopsError as exc:
        raise LoadFailed(f"cannot read the policy's trusted_types: {exc.message}") from None
    for entry in where:  # a team's own classes are imported from the repository
        if entry not in sys.path:
            sys.path.append(entry)
    # The plaintext lives in an unnamed file: nothing is left on disk if the server is killed.
    with unnamed_file() as fh:
        try:
            restore_into(project, manifest, fh)
        except MlopsError as exc:
            raise LoadFailed(f"could not fetch the artifact: {exc.message}") from None
        return _servable(manifest.model, manifest.version, manifest.artifact.sha256, fh,
                         manifest.artifact.format, trusted, where, holdout, header,
                         worker_limits(project))


def load_from_file(model: str, version: str, path: Path, fmt: str,
                   sha256: str | None) -> Loaded:
    """A pinned artifact (what a Kubernetes pod's init container fetched): checked against the
    expected sha256 when one is given, then checked, loaded and smoke-tested like a registry
    version."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - held open for the worker, closed below
        digest = sha256_file(Path(fd_path(fh.fileno())))
    except OSError as exc:
        raise LoadFailed(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        if sha256 and digest != sha256:
            raise LoadFailed(str(IntegrityError(f"{path}: sha256 {digest[:12]}… is not the "
                                                f"expected {sha256[:12]}…")))
        return _servable(model, version, digest, fh, fmt, (), (), None, [], Limits())


def _servable(model: str, version: str, sha256: str, fh: IO[bytes], fmt: str,
              trusted: Sequence[str], where: Sequence[str], holdout: Path | None,
              header: list[str], limits: Limits) -> Loaded:
    """The expensive part of a switch, off the interpreter the requests share. The worker
    (another process, at a lower CPU priority, under the worker's limits) loads the verified
    bytes with the guarded loader and smoke-tests them: a model that crashes, hangs or runs out
    of memory ends the worker, not the server, and its CPU time is not the requests' GIL time.
    Only then does the server load the same bytes itself -- it must hold the model to answer --
    through the same guarded loader (the worker's verdict is not a reason to load any less
    carefully), paced so that a request waits at most a millisecond's slice of it."""
    request = {"mode": "serve", "format": fmt, "trusted_types": list(trusted),
               "holdout": os.path.abspath(holdout) if holdout is not None else None,
               "header": header}
    try:
        result = run_worker(request, SMOKE_TIMEOUT_S, replace(limits, nice=WORKER_NICE),
                            artifact=fh, sys_path=where)
    except CheckFailed as exc:
        raise LoadFailed(exc.message) from None
    if not result.get("ok"):
        raise LoadFailed(str(result.get("error") or "the check in the worker failed"))
    # The worker held the file: load only if it still holds the verified bytes (with the
    # default limits a worker cannot write a file, but it can truncate one).
    path = Path(fd_path(fh.fileno()))
    if sha256_file(path) != sha256:
        raise LoadFailed(str(IntegrityError(f"{model} {version}: the artifact changed after it "
                                            "was verified")))
    quiet_feature_name_warning()
    with paced():
        estimator = _load(path, fmt, trusted)
    n, names = describe(estimator, header)
    return Loaded(model, version, sha256, estimator, n, names)


def _load(path: Path, fmt: str, trusted: Sequence[str] = ()) -> Any:
    from mlopsctl.loading import UnsafeArtifact

    try:
        return safe_load(path, fmt, trusted)
    except UnsafeArtifact as exc:
        raise LoadFailed(str(exc)) from None
    except CheckFailed as exc:
        raise LoadFailed(exc.message) from None
    except Exception as exc:  # a broken file is a finding about the version, not a crash
        raise LoadFailed(f"could not load the {fmt} artifact: {type(exc).__name__}: "
                         f"{exc}") from None
