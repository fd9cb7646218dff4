"""The validation worker: loads a model and scores it in a separate process, so a crashing,
hostile or hanging model cannot take the CLI down. ``mlopsctl.loading.sandbox`` starts it with
a clean environment and an empty working directory; the worker's first act is to set its own
hard limits (memory, CPU time, file size, open files), before anything of the model is read.

Protocol: one JSON request on stdin, one JSON result on the file descriptor ``reply_fd`` (never
stdout, which a model may print to).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def apply_limits(limits: dict[str, Any]) -> None:
    import resource
    import signal

    mib = 1024 * 1024

    def cap(which: int, value: int, grace: int = 0) -> None:
        # The soft limit signals (SIGXCPU, EFBIG, MemoryError); the hard one, ``grace`` later,
        # kills: the gap lets the worker say which limit it met.
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
            resource.setrlimit(which, (value, min(hard, value + grace)))
        else:
            resource.setrlimit(which, (value, value + grace))

    if limits.get("memory_mb"):
        cap(resource.RLIMIT_AS, int(limits["memory_mb"]) * mib)
    if limits.get("cpu_seconds"):
        cap(resource.RLIMIT_CPU, max(1, int(float(limits["cpu_seconds"]) + 0.999)), grace=2)
    cap(resource.RLIMIT_FSIZE, int(limits.get("file_size_mb", 0)) * mib)
    if limits.get("open_files"):
        cap(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    cap(resource.RLIMIT_CORE, 0)
    if limits.get("nice"):
        os.nice(int(limits["nice"]))
    # A write past the file-size limit fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class BadData(Exception):
    """The holdout does not fit the model: a usage error (exit 2), not a failed gate."""


def _load_table(path: Path) -> Any:
    import pandas as pd

    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _is_classifier(model: Any, y: Any) -> bool:
    from sklearn.base import is_classifier, is_regressor

    if not hasattr(model, "__sklearn_tags__"):  # an ONNX session: classes_ tell a classifier
        return hasattr(model, "classes_")
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


def _load(req: dict[str, Any]) -> Any:
    from mlopsctl.loading import load_model

    return load_model(Path(req["artifact"]), req["format"], req.get("trusted_types", ()))


def features(model: Any, table: Any, target: str | None, drop: list[str]) -> Any:
    """The columns the model was fitted on: its ``feature_names_in_`` when it has them (an
    extra ID column is then simply not passed), else every column but the target and ``drop``."""
    missing = [c for c in drop if c not in table.columns]
    if missing:
        raise BadData(f"--drop names columns the holdout does not have: {', '.join(missing)}")
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        wanted = [str(n) for n in names]
        absent = [n for n in wanted if n not in table.columns]
        if absent:
            raise BadData(f"the holdout lacks column(s) the model was fitted on: "
                          f"{', '.join(absent[:10])}")
        return table[wanted]
    x = table.drop(columns=[c for c in [target, *drop] if c and c in table.columns])
    width = getattr(model, "n_features_in_", None)
    if isinstance(width, int) and x.shape[1] != width:
        raise BadData(f"the model expects {width} feature columns, the holdout has "
                      f"{x.shape[1]} ({', '.join(map(str, x.columns[:10]))}); "
                      "drop extra columns (an ID, a timestamp) with --drop COLUMN")
    return x


def score(req: dict[str, Any]) -> dict[str, Any]:
    from mlopsctl.loading import UnsafeArtifact

    try:
        model = _load(req)
    except UnsafeArtifact as exc:
        return {"ok": False, "refused": True, "error": str(exc), "globals": exc.globals}
    table = _load_table(Path(req["holdout"]))
    target = req["target"]
    if target not in table.columns:
        return {"ok": False, "usage": True, "error": f"column '{target}' is not in the holdout "
                f"(columns: {', '.join(map(str, table.columns[:20]))})"}
    y = table[target]
    try:
        x = features(model, table, target, list(req.get("drop") or []))
    except BadData as exc:
        return {"ok": False, "usage": True, "error": str(exc)}
    t0 = time.perf_counter()
    try:
        pred = model.predict(x)
    except ValueError as exc:  # scikit-learn's word for input that does not fit the model
        return {"ok": False, "usage": True, "error": f"the model cannot predict on this holdout: "
                f"{str(exc).splitlines()[0][:300]}"}
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
    from mlopsctl.loading import UnsafeArtifact

    try:
        model = _load(req)
    except UnsafeArtifact as exc:
        return {"ok": False, "refused": True, "error": str(exc), "globals": exc.globals}
    rows = 0
    if req.get("holdout"):
        table = _load_table(Path(req["holdout"])).head(int(req.get("rows", 5)))
        try:
            x = features(model, table, req.get("target"), list(req.get("drop") or []))
        except BadData as exc:
            return {"ok": False, "error": str(exc)}
        pred = model.predict(x)
        rows = len(pred)
        if rows != len(x):
            return {"ok": False, "error": f"predicted {rows} values for {len(x)} rows"}
    return {"ok": True, "rows": rows, "model_class": type(model).__name__}


def serve_check(req: dict[str, Any]) -> dict[str, Any]:
    """What ``mlopsctl serve`` asks before it loads a version itself: the guarded load and the
    server's own smoke test (``mlopsctl.serving.smoke``), here, where a crash, a hang or a
    runaway allocation ends this process and not the server."""
    from mlopsctl.loading import UnsafeArtifact
    from mlopsctl.serving.smoke import SmokeFailed, smoke

    try:
        model = _load(req)
    except UnsafeArtifact as exc:
        return {"ok": False, "refused": True, "error": str(exc), "globals": exc.globals}
    except MemoryError:
        raise
    except Exception as exc:  # a broken file is a finding about the version
        return {"ok": False, "error": f"could not load the {req['format']} artifact: "
                f"{type(exc).__name__}: {exc}"}
    try:
        smoke(model, req.get("holdout"), list(req.get("header") or []))
    except SmokeFailed as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "model_class": type(model).__name__}


MODES = {"smoke": smoke, "serve": serve_check, "score": score}


def main() -> int:
    import warnings

    req = json.loads(sys.stdin.read())
    apply_limits(req.get("limits") or {})
    reply = os.fdopen(int(req["reply_fd"]), "w") if "reply_fd" in req else sys.stdout
    sys.path[1:1] = [str(p) for p in req.get("sys_path") or []]  # a team's trusted classes
    warnings.filterwarnings("ignore")
    try:
        result = MODES.get(req.get("mode") or "score", score)(req)
    except MemoryError:
        limit = (req.get("limits") or {}).get("memory_mb")
        result = {"ok": False, "error": f"the model exceeded the worker's memory limit "
                  f"({limit} MiB; `worker: memory_mb` in .mlops/config.yaml)"}
    except Exception as exc:  # the model's own errors are findings, not worker crashes
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    reply.write(json.dumps(result, default=str))
    reply.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
