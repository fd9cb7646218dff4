"""The Python API, for notebooks and pipelines. It calls the same services as the CLI.

    from mlopsctl import MLOpsManager, VersionPolicy
    manager = MLOpsManager("path/to/repo")
    v = manager.create_model_version(model_name="churn", model_path="model.pkl",
                                     performance_metrics={"accuracy": 0.91},
                                     version_policy=VersionPolicy.MINOR)
    v.version            # '0.2.0'
    manager.fetch("churn@0.2.0", "restored.pkl")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl.project import Project


class VersionPolicy(str, Enum):
    """Which part of the version a new registration bumps."""

    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"


class MLOpsConfig(mf.Config):
    """The registry's configuration (``.mlops/config.yaml``): remote, encryption, environments
    and their gates, performance targets, alert thresholds and the policy pin."""

    @classmethod
    def load(cls, repo_path: str | os.PathLike[str] = ".") -> MLOpsConfig:
        project = Project.open(Path(repo_path))
        return cls.model_validate(project.config.model_dump())


class ModelVersion(mf.VersionManifest):
    """A registered version: its manifest plus where it lives in git."""

    tag: str | None = None
    commit: str | None = None


class MLOpsManager:
    """Registry operations on one repository."""

    def __init__(self, repo_path: str | os.PathLike[str] = ".",
                 config: MLOpsConfig | None = None) -> None:
        self.project = Project.open(Path(repo_path))
        if config is not None:
            self.project.config = config
        self.config = config or MLOpsConfig.model_validate(self.project.config.model_dump())

    @property
    def root(self) -> Path:
        return self.project.root

    def create_model_version(
        self,
        model_name: str,
        model_path: str | os.PathLike[str],
        config_path: str | os.PathLike[str] | None = None,
        performance_metrics: Mapping[str, float] | None = None,
        version_policy: VersionPolicy | str = VersionPolicy.MINOR,
        version: str | None = None,
        params: Mapping[str, Any] | None = None,
        data_paths: Sequence[str | os.PathLike[str]] = (),
        message: str = "",
    ) -> ModelVersion:
        """Register a new version (what ``mlopsctl bump`` does) and return it."""
        from mlopsctl.errors import UsageError
        from mlopsctl.versioning import BumpRequest, bump

        metrics = {}
        for name, value in (performance_metrics or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"metric '{name}' is not a number: {value!r}")
            metrics[str(name)] = float(value)
        req = BumpRequest(
            model=model_name,
            artifact=Path(model_path),
            part=None if version else VersionPolicy(version_policy).value,
            version=version,
            metrics=metrics,
            params=dict(params or {}),
            data=[Path(p) for p in data_paths],
            config_file=Path(config_path) if config_path else None,
            message=message,
        )
        result = bump(self.project, req)
        return ModelVersion(**result.manifest.model_dump(), tag=result.tag, commit=result.commit)

    def get_model_version(self, model_name: str, version: str = "latest") -> ModelVersion:
        """A registered version's manifest (``version`` may be 'latest' or an environment
        given as '#staging')."""
        from mlopsctl import registry as reg
        from mlopsctl.artifacts import resolve

        ref = f"{model_name}{version}" if version.startswith("#") else f"{model_name}@{version}"
        found = resolve(self.project, reg.load(self.root), ref)
        return ModelVersion(**found.manifest.model_dump(), tag=found.entry.registration.tag,
                            commit=found.entry.commit)

    def list_models(self) -> dict[str, Any]:
        """``{model: {version, stage, registered, active}}``, as ``mlopsctl show --json``."""
        from mlopsctl import registry as reg
        from mlopsctl import views

        return views.summary(reg.load(self.root))

    def fetch(self, ref: str, out: str | os.PathLike[str] | None = None,
              force: bool = False) -> Path:
        """Restore a verified copy of ``model@version`` or ``model#env``; returns its path."""
        from mlopsctl.artifacts import fetch

        return fetch(self.project, ref, Path(out) if out else None, force=force).path

    def verify(self, target: str | None = None) -> bool:
        from mlopsctl.artifacts import verify

        return all(c.ok for c in verify(self.project, target))
