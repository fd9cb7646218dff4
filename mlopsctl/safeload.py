"""Kept for existing imports: the safe loader lives in ``mlopsctl.loading``."""

from mlopsctl.loading.loader import (
    Allowlist,
    OnnxModel,
    UnsafeArtifact,
    check_pickle,
    load_model,
    pickle_globals,
)

__all__ = ["Allowlist", "OnnxModel", "UnsafeArtifact", "check_pickle", "load_model",
           "pickle_globals"]
