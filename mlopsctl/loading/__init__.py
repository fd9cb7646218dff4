"""Model files from strangers: the exact allowlist, the guarded loaders and the sandboxed worker.

``load_model`` loads a file in this process under the loader's guards (used by the worker and by
``mlopsctl serve``); ``sandbox.run_worker`` runs the worker in a separate, limited process, which
is how validation and promotion load a model. docs/security.md states the threat model.
"""

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
