"""The server's smoke test of a version: predict a few holdout rows (or zeros of the model's
width) and get one answer per row. It runs in the sandboxed worker (``mlopsctl.worker``, mode
``serve``) before the server loads the version itself, so this module imports nothing heavy."""

from __future__ import annotations

import csv
from typing import Any

SMOKE_ROWS = 5


class SmokeFailed(Exception):
    """The version cannot answer; the message says why."""


def describe(estimator: Any, header: list[str]) -> tuple[int | None, tuple[str, ...] | None]:
    """(number of features, feature names) as the model records them, else the holdout's."""
    names = getattr(estimator, "feature_names_in_", None)
    feature_names = tuple(str(n) for n in names) if names is not None else (
        tuple(header) or None)
    n = getattr(estimator, "n_features_in_", None)
    if n is None and feature_names is not None:
        n = len(feature_names)
    return (int(n) if n is not None else None), feature_names


def quiet_feature_name_warning() -> None:
    """Models fitted on a DataFrame warn on every array; the server checks columns itself."""
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names")


def _rows(n_features: int | None, names: tuple[str, ...] | None, holdout: str | None) -> Any:
    import numpy as np

    if holdout is not None and names:
        try:
            with open(holdout, newline="") as fh:
                reader = csv.DictReader(fh)
                rows = [[float(r[n]) for n in names]
                        for _, r in zip(range(SMOKE_ROWS), reader, strict=False)]
            if rows:
                return np.asarray(rows, dtype=np.float64)
        except (OSError, KeyError, ValueError, TypeError):
            pass
    if n_features:
        return np.zeros((2, n_features))
    return None


def _predictions(estimator: Any, x: Any) -> list[Any]:
    out = estimator.predict(x)
    return out.tolist() if hasattr(out, "tolist") else list(out)


def smoke(estimator: Any, holdout: str | None, header: list[str]) -> None:
    """Predict a few rows as a request would send them; SmokeFailed if the model cannot."""
    if not callable(getattr(estimator, "predict", None)):
        raise SmokeFailed(f"{type(estimator).__name__} has no predict()")
    quiet_feature_name_warning()
    x = _rows(*describe(estimator, header), holdout)
    if x is None:
        return
    try:
        got = _predictions(estimator, x)
    except Exception as exc:  # the model's own failure is the finding
        raise SmokeFailed(f"smoke test failed: {type(exc).__name__}: {exc}") from None
    if len(got) != len(x):
        raise SmokeFailed(f"smoke test: {len(got)} predictions for {len(x)} rows")
