"""The old system's production integration, on the registry's own services.

    from mlopsctl.production_integration import create_production_mlops_integration
    integration = create_production_mlops_integration()
    results = integration.train_and_version_model(X_train, y_train, "my_model")
    deployment = integration.deploy_model_with_mlops(
        "my_model", results["mlops_info"]["model_version"])
    integration.validate_integration_health()["overall_healthy"]

``train_and_version_model`` trains a scikit-learn pipeline, keeps a stratified holdout split
beside the training rows (both committed under ``data/<model>/``, so every clone validates on
the same rows and the version's lineage names them by hash), fills the model card and registers
the version, validated for staging. There is no "legacy fallback": a deployment a gate refuses
comes back with ``status == "refused"``, the gate and the reason.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from mlopsctl.api import MLOpsConfig, MLOpsManager, VersionPolicy
from mlopsctl.errors import MlopsError, UsageError

TARGET = "target"


class MLOpsProductionIntegration:
    def __init__(self, manager: MLOpsManager) -> None:
        self.mlops_manager = manager

    @property
    def constitutional_hash(self) -> str:
        return self.mlops_manager.constitutional_hash

    # --- training ------------------------------------------------------------------------

    def train_and_version_model(
        self, X: Any, y: Any, model_name: str = "production_model",
        version_policy: VersionPolicy = VersionPolicy.MINOR,
        metadata: dict[str, Any] | None = None, test_size: float = 0.25,
        random_state: int = 0, description: str | None = None,
        intended_use: str | None = None,
    ) -> dict[str, Any]:
        """Train, keep a holdout, register (validated for staging). Returns
        ``{"training_results", "mlops_info": {"model_version", ...}, "performance_metrics",
        "constitutional_hash", "constitutional_hash_verified"}``."""
        import pandas as pd
        from sklearn.model_selection import train_test_split

        features = _frame(X)
        labels = pd.Series(list(y) if not hasattr(y, "__array__") else y, name=TARGET)
        if len(features) != len(labels):
            raise UsageError(f"X has {len(features)} rows but y has {len(labels)}")
        if len(features) < 10:
            raise UsageError("at least 10 rows are needed to keep a holdout split")
        classify = _is_classification(labels)
        stratify = labels if classify and labels.value_counts().min() >= 2 else None
        x_train, x_test, y_train, y_test = train_test_split(
            features, labels.to_numpy(), test_size=test_size, random_state=random_state,
            stratify=stratify)
        estimator = _estimator(classify)
        estimator.fit(x_train, y_train)
        metrics = _metrics(estimator, x_test, y_test, classify)

        manager = self.mlops_manager
        data_dir = manager.root / "data" / model_name
        train_path, holdout_path = data_dir / "train.csv", data_dir / "holdout.csv"
        _commit_data(manager, model_name, {
            train_path: x_train.assign(**{TARGET: y_train}),
            holdout_path: x_test.assign(**{TARGET: y_test})})
        kind = type(estimator.steps[-1][1]).__name__
        training = {"estimator": kind, "task": "classification" if classify else "regression",
                    "train_rows": len(x_train), "holdout_rows": len(x_test),
                    "features": list(map(str, features.columns)), **metrics}
        with tempfile.TemporaryDirectory(prefix="mlopsctl-train-") as tmp:
            model_path = Path(tmp) / f"{model_name}.pkl"
            model_path.write_bytes(pickle.dumps(estimator))
            config_path = Path(tmp) / f"{model_name}_config.json"
            config_path.write_text(json.dumps({
                "model_name": model_name, "estimator": kind, "test_size": test_size,
                "random_state": random_state,
                "performance_targets": manager.config.performance_targets}, indent=2))
            version = manager.create_model_version(
                model_name=model_name, model_path=model_path, config_path=config_path,
                performance_metrics=metrics, version_policy=version_policy,
                params={"estimator": kind, "test_size": test_size,
                        "random_state": random_state},
                metadata=metadata, data_paths=[train_path, holdout_path],
                holdout=holdout_path, target=TARGET,
                description=description or (
                    f"{kind} pipeline trained on {len(x_train)} rows of "
                    f"{features.shape[1]} features"),
                intended_use=intended_use or (
                    f"Predictions for '{model_name}' served from this registry; replace this "
                    "with the model's real intended use (set_model_card)"),
                message=f"{kind} trained through the Python API")
        target_score = manager.project.config.performance_targets.constitutional_compliance
        score = version.constitutional_compliance_score
        return {
            "training_results": training,
            "mlops_info": {
                "model_version": version.version, "model_id": version.model_id,
                "tag": version.tag, "git_commit": version.git_commit_hash,
                "constitutional_compliance_score": score,
                "constitutional_compliance_verified": score is not None and score >= target_score,
                "validation_passed": version.validation_passed,
                "holdout": holdout_path.relative_to(manager.root).as_posix(),
            },
            "performance_metrics": metrics,
            "constitutional_hash": self.constitutional_hash,
            "constitutional_hash_verified": manager.constitutional_hash_verified,
        }

    # --- releasing -----------------------------------------------------------------------

    def deploy_model_with_mlops(self, model_name: str, model_version: str,
                                skip_staging: bool = False) -> dict[str, Any]:
        """Staging, then production, through the gates; the result as a dict (``status`` is
        ``deployed`` or ``refused``, with ``gate`` and ``reason``)."""
        result = self.mlops_manager.deploy_model(model_name, model_version, skip_staging)
        doc = result.to_json()
        doc.update(status=result.deployment_status.value, deployment_method="mlops_pipeline")
        return doc

    def get_integrated_model_status(self, model_name: str) -> dict[str, Any]:
        return {"model_name": model_name,
                "mlops_status": self.mlops_manager.get_model_status(model_name),
                "mlops_dashboard": self.mlops_manager.get_mlops_dashboard(scrape=False),
                "constitutional_hash": self.constitutional_hash,
                "constitutional_hash_verified": self.mlops_manager.constitutional_hash_verified}

    def validate_integration_health(self) -> dict[str, Any]:
        """The registry's health (``mlopsctl doctor``) and the policy pin, as one document;
        ``overall_healthy`` is False when a doctor check fails or the hash is not verified."""
        from mlopsctl.doctor import diagnose

        manager = self.mlops_manager
        health: dict[str, Any] = {
            "constitutional_hash": manager.constitutional_hash,
            "expected_constitutional_hash": manager.config.constitutional_hash,
            "constitutional_hash_verified": manager.constitutional_hash_verified,
        }
        try:
            findings = diagnose(manager.root)
        except MlopsError as exc:
            health.update(mlops_system_healthy=False, mlops_error=exc.message, checks=[])
        else:
            checks = [_finding(f) for f in findings]
            failed = [c for c in checks if c["status"] == "fail"]
            health.update(mlops_system_healthy=not failed, checks=checks,
                          problems=[f"{c['name']}: {c['detail']}" for c in failed])
        health["overall_healthy"] = bool(health["constitutional_hash_verified"]
                                         and health["mlops_system_healthy"])
        return health


def _finding(finding: Any) -> dict[str, Any]:
    return {"name": finding.check, "status": finding.status, "detail": finding.detail,
            "hint": finding.hint}


def create_production_mlops_integration(
    constitutional_hash: str | None = None,
    storage_root: str | os.PathLike[str] = ".",
    existing_mlops_manager: MLOpsManager | None = None,
) -> MLOpsProductionIntegration:
    """The integration on the registry containing ``storage_root`` (default: the current
    directory). ``constitutional_hash``: the policy hash you expect (default: the pinned one)."""
    manager = existing_mlops_manager or MLOpsManager(MLOpsConfig(
        storage_root=storage_root, constitutional_hash=constitutional_hash))
    return MLOpsProductionIntegration(manager)


# --- helpers ---------------------------------------------------------------------------------


def _frame(x: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(x, pd.DataFrame):
        frame = x.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        if TARGET in frame.columns:
            raise UsageError(f"X has a column named '{TARGET}'; rename it")
        return frame
    array = np.asarray(x, dtype=float)
    if array.ndim != 2:
        raise UsageError("X must be a 2-D table of features (rows x columns)")
    return pd.DataFrame(array, columns=[f"f{i}" for i in range(array.shape[1])])


def _is_classification(y: Any) -> bool:
    if y.dtype.kind in "bOSU":
        return True
    if y.dtype.kind in "iu":
        return bool(y.nunique() <= max(20, len(y) // 10))
    return bool(y.dtype.kind == "f" and (y % 1 == 0).all() and y.nunique() <= 20)


def _estimator(classify: bool) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    last = LogisticRegression(max_iter=2000) if classify else Ridge()
    return make_pipeline(StandardScaler(), last)


def _metrics(estimator: Any, x: Any, y: Any, classify: bool) -> dict[str, float]:
    from mlopsctl.worker import classification_metrics, regression_metrics

    pred = estimator.predict(x)
    if classify:
        import pandas as pd

        out = classification_metrics(estimator, x, pd.Series(y), pred)
        return {k: round(v, 6) for k, v in out.items()}
    return {k: round(v, 6) for k, v in regression_metrics(y, pred).items()}


def _commit_data(manager: MLOpsManager, model: str, tables: dict[Path, Any]) -> None:
    """Write the split and commit it (only these files) so lineage and holdout are in git."""
    from mlopsctl.fsio import file_lock
    from mlopsctl.gitops import refs

    root = manager.root
    files = {p.relative_to(root).as_posix(): t.to_csv(index=False).encode()
             for p, t in tables.items()}
    with file_lock(manager.project.ws.lock_path):
        head = refs.head_commit(root)
        refs.commit_files(root, files, f"mlopsctl: training data and holdout of {model}", head)
        refs.sync_worktree(root, files)
