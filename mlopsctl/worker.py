"""The validation worker: loads a model and scores it in a separate process, so a crashing,
hostile or hanging model cannot take the CLI down (the parent enforces the time limit).

Protocol: one JSON request on stdin, one JSON result on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def _load_table(path: Path) -> Any:
    import pandas as pd

    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _is_classifier(model: Any, y: Any) -> bool:
    from sklearn.base import is_classifier, is_regressor

    if is_regressor(model):
        return False
    if is_classifier(model) or hasattr(model, "classes_"):
        return True
    return y.dtype.kind in "biuOSU" and y.nunique() <= max(20, len(y) // 10)


def classification_metrics(model: Any, x: Any, y: Any, pred: Any) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    labels = np.unique(np.concatenate([np.asarray(y), np.asarray(pred)]))
    binary = len(labels) <= 2
    if binary:
        pos = getattr(model, "classes_", labels)[-1]
        kw: dict[str, Any] = {"average": "binary", "pos_label": pos, "zero_division": 0}
    else:
        kw = {"average": "macro", "zero_division": 0}
    out = {
        "accuracy": float(m.accuracy_score(y, pred)),
        "precision": float(m.precision_score(y, pred, **kw)),
        "recall": float(m.recall_score(y, pred, **kw)),
        "f1": float(m.f1_score(y, pred, **kw)),
    }
    if hasattr(model, "predict_proba"):
        try:
            proba = model.predict_proba(x)
            if binary and proba.shape[1] == 2:
                out["roc_auc"] = float(m.roc_auc_score(y == pos, proba[:, 1]))
            elif not binary:
                out["roc_auc"] = float(m.roc_auc_score(y, proba, multi_class="ovr",
                                                       labels=model.classes_))
        except (ValueError, AttributeError, IndexError):
            pass  # ROC AUC is undefined here (e.g. one class in the holdout)
    return out


def regression_metrics(y: Any, pred: Any) -> dict[str, float]:
    from sklearn import metrics as m

    return {
        "mae": float(m.mean_absolute_error(y, pred)),
        "rmse": float(m.mean_squared_error(y, pred) ** 0.5),
        "r2": float(m.r2_score(y, pred)),
    }


def measure_latency(model: Any, x: Any, runs: int, warmup: int) -> dict[str, float]:
    """Single-row predict latency after warm-up (ms), plus batch throughput (rows/s)."""
    import numpy as np

    n = len(x)
    rows = [x.iloc[[i % n]] for i in range(min(n, runs))]
    for i in range(warmup):
        model.predict(rows[i % len(rows)])
    samples = []
    for i in range(runs):
        row = rows[i % len(rows)]
        t0 = time.perf_counter_ns()
        model.predict(row)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    start = time.perf_counter()
    model.predict(x)
    batch = time.perf_counter() - start
    arr = np.array(samples)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "max_ms": float(arr.max()),
        "runs": float(runs),
        "throughput_rps": float(n / batch) if batch > 0 else float("inf"),
    }


def score(req: dict[str, Any]) -> dict[str, Any]:
    from mlopsctl.safeload import UnsafeArtifact, load_model

    try:
        model = load_model(Path(req["artifact"]), req["format"])
    except UnsafeArtifact as exc:
        return {"ok": False, "refused": True, "error": str(exc), "globals": exc.globals}
    table = _load_table(Path(req["holdout"]))
    target = req["target"]
    if target not in table.columns:
        return {"ok": False, "usage": True, "error": f"column '{target}' is not in the holdout "
                f"(columns: {', '.join(map(str, table.columns[:20]))})"}
    y = table[target]
    x = table.drop(columns=[target])
    t0 = time.perf_counter()
    pred = model.predict(x)
    predict_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if _is_classifier(model, y):
        task, metrics = "classification", classification_metrics(model, x, y, pred)
    else:
        task, metrics = "regression", regression_metrics(y, pred)
    metrics_s = time.perf_counter() - t0
    latency = measure_latency(model, x, int(req.get("latency_runs", 200)),
                              int(req.get("warmup", 10)))
    return {"ok": True, "task": task, "rows": len(x), "metrics": metrics,
            "latency": latency, "model_class": type(model).__name__,
            "timings": {"predict_s": predict_s, "metrics_s": metrics_s}}


def smoke(req: dict[str, Any]) -> dict[str, Any]:
    """Load the model and predict a few holdout rows (or just load, with no holdout)."""
    from mlopsctl.safeload import UnsafeArtifact, load_model

    try:
        model = load_model(Path(req["artifact"]), req["format"])
    except UnsafeArtifact as exc:
        return {"ok": False, "refused": True, "error": str(exc)}
    rows = 0
    if req.get("holdout"):
        table = _load_table(Path(req["holdout"]))
        x = table.drop(columns=[req["target"]], errors="ignore").head(int(req.get("rows", 5)))
        pred = model.predict(x)
        rows = len(pred)
        if rows != len(x):
            return {"ok": False, "error": f"predicted {rows} values for {len(x)} rows"}
    return {"ok": True, "rows": rows, "model_class": type(model).__name__}


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore")
    req = json.loads(sys.stdin.read())
    try:
        result = smoke(req) if req.get("mode") == "smoke" else score(req)
    except Exception as exc:  # the model's own errors are findings, not worker crashes
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
