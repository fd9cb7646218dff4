"""mlopsctl: a Git-native model registry and release tool.

The Python API is imported lazily, so ``import mlopsctl`` stays cheap::

    from mlopsctl import MLOpsManager, VersionPolicy
    manager = MLOpsManager()
    v = manager.create_model_version(model_name="churn", model_path="model.pkl",
                                     performance_metrics={"accuracy": 0.91},
                                     version_policy=VersionPolicy.MINOR,
                                     holdout="data/holdout.csv", target="churned")
    print(v.version, v.constitutional_compliance_score)
    print(manager.deploy_model("churn", v.version).deployment_status)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {"MLOpsConfig", "MLOpsManager", "VersionPolicy", "ModelVersion", "DeploymentResult",
        "DeploymentStatus"}
_ERRORS = {"MlopsError", "CheckFailed", "UsageError", "EnvironmentProblem", "IntegrityError"}
__all__ = sorted(_API | _ERRORS | {"__version__", "create_production_mlops_integration"})


def __getattr__(name: str) -> Any:
    if name in _API:
        from mlopsctl import api

        return getattr(api, name)
    if name in _ERRORS:
        from mlopsctl import errors

        return getattr(errors, name)
    if name == "create_production_mlops_integration":
        from mlopsctl.production_integration import create_production_mlops_integration

        return create_production_mlops_integration
    raise AttributeError(f"module 'mlopsctl' has no attribute {name!r}")
