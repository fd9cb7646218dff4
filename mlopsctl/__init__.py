"""mlopsctl: a Git-native model registry and release tool.

The Python API is imported lazily, so ``import mlopsctl`` stays cheap::

    from mlopsctl import MLOpsManager, VersionPolicy
    manager = MLOpsManager()
    v = manager.create_model_version(model_name="churn", model_path="model.pkl",
                                     performance_metrics={"accuracy": 0.91},
                                     version_policy=VersionPolicy.MINOR)
    print(v.version)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {"MLOpsConfig", "MLOpsManager", "VersionPolicy", "ModelVersion"}
__all__ = sorted(_API | {"__version__"})


def __getattr__(name: str) -> Any:
    if name in _API:
        from mlopsctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlopsctl' has no attribute {name!r}")
