"""A served version: fetched through the verified restore path, loaded with the safe loader,
smoke-tested; and the checks that turn a request's ``instances`` into a feature matrix."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, IntegrityError
from mlopsctl.fsio import sha256_file
from mlopsctl.loading.sandbox import fd_path, unnamed_file
from mlopsctl.project import Project

SMOKE_ROWS = 5


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


def _describe(estimator: Any, header: list[str]) -> tuple[int | None, tuple[str, ...] | None]:
    names = getattr(estimator, "feature_names_in_", None)
    feature_names = tuple(str(n) for n in names) if names is not None else (
        tuple(header) or None)
    n = getattr(estimator, "n_features_in_", None)
    if n is None and feature_names is not None:
        n = len(feature_names)
    return (int(n) if n is not None else None), feature_names


def _smoke_rows(loaded: Loaded, holdout: Path | None) -> Any:
    import numpy as np

    if holdout is not None and loaded.feature_names:
        try:
            with open(holdout, newline="") as fh:
                reader = csv.DictReader(fh)
                rows = [[float(r[n]) for n in loaded.feature_names]
                        for _, r in zip(range(SMOKE_ROWS), reader, strict=False)]
            if rows:
                return np.asarray(rows, dtype=np.float64)
        except (OSError, KeyError, ValueError, TypeError):
            pass
    if loaded.n_features:
        return np.zeros((2, loaded.n_features))
    return None


def smoke(loaded: Loaded, holdout: Path | None) -> None:
    """Predict a few rows (holdout rows when the card names a holdout); LoadFailed if not."""
    if not callable(getattr(loaded.estimator, "predict", None)):
        raise LoadFailed(f"{type(loaded.estimator).__name__} has no predict()")
    x = _smoke_rows(loaded, holdout)
    if x is None:
        return
    try:
        got = loaded.predict(x)
    except Exception as exc:  # the model's own failure is the finding
        raise LoadFailed(f"smoke test failed: {type(exc).__name__}: {exc}") from None
    if len(got) != len(x):
        raise LoadFailed(f"smoke test: {len(got)} predictions for {len(x)} rows")


def quiet_feature_name_warning() -> None:
    """Models fitted on a DataFrame warn on every array; the server checks columns itself."""
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names")


def build(model: str, version: str, sha256: str, estimator: Any, header: list[str],
          holdout: Path | None) -> Loaded:
    quiet_feature_name_warning()
    n, names = _describe(estimator, header)
    loaded = Loaded(model, version, sha256, estimator, n, names)
    smoke(loaded, holdout)
    return loaded


def load_from_registry(project: Project, manifest: mf.VersionManifest) -> Loaded:
    """Fetch (sha256 verified), load safely, smoke-test. LoadFailed says why not."""
    from mlopsctl.artifacts import restore_into
    from mlopsctl.errors import MlopsError
    from mlopsctl.validation import trusted_types

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
        estimator = _load(Path(fd_path(fh.fileno())), manifest.artifact.format, trusted)
    return build(manifest.model, manifest.version, manifest.artifact.sha256, estimator, header,
                 holdout)


def load_from_file(model: str, version: str, path: Path, fmt: str,
                   sha256: str | None) -> Loaded:
    """A pinned artifact (what a Kubernetes pod's init container fetched): checked against the
    expected sha256 when one is given, then loaded and smoke-tested like a registry version."""
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise LoadFailed(f"cannot read {path}: {exc.strerror}") from None
    if sha256 and digest != sha256:
        raise LoadFailed(str(IntegrityError(f"{path}: sha256 {digest[:12]}… is not the "
                                            f"expected {sha256[:12]}…")))
    estimator = _load(path, fmt)
    return build(model, version, digest, estimator, [], None)


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
