"""The legitimate corpus: every scikit-learn estimator that fits on small data (the survey behind
the loader's allowlist, plus Pipelines, a ColumnTransformer on a pandas frame and sparse inputs),
saved as a pickle, a joblib file and a skops file, must load through the guarded loader and give
exactly the outputs of the estimator it was saved from. A handful also go through the real
`mlopsctl validate`.

The hostile corpus (test_hostile_corpus.py) shows what the loader refuses; this one shows that
refusing it costs no real model.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from conftest import run, write

pytestmark = pytest.mark.hostile

FORMATS = ("sklearn-pickle", "joblib", "skops")
METHODS = ("predict", "predict_proba", "decision_function", "transform", "score_samples")


def _outputs(estimator: Any, x: Any) -> dict[str, Any]:
    """What the estimator gives for ``x``: each prediction method it offers (an exception
    counts as an output), or its fitted labels/embedding when it can only fit."""
    import numpy as np

    out: dict[str, Any] = {}
    for method in METHODS:
        np.random.seed(0)  # estimators with random_state=None draw from the global generator
        try:
            func = getattr(estimator, method)
        except AttributeError:
            continue
        try:
            out[method] = func(x)
        except Exception as exc:  # the same failure on both sides is the same behaviour
            out[method] = f"<{type(exc).__name__}>"
    if not out:
        for attr in ("labels_", "embedding_", "components_", "location_"):
            if hasattr(estimator, attr):
                out[attr] = getattr(estimator, attr)
    return out


def _same(a: Any, b: Any) -> bool:
    import numpy as np
    from scipy import sparse

    if sparse.issparse(a) or sparse.issparse(b):
        return bool(sparse.issparse(a) and sparse.issparse(b)
                    and np.array_equal(a.toarray(), b.toarray(), equal_nan=True))
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if hasattr(a, "to_numpy"):
        a, b = a.to_numpy(), b.to_numpy()
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(a.shape == b.shape and np.array_equal(a, b, equal_nan=True))
    return bool(a.shape == b.shape and np.array_equal(a, b))


def _write(fmt: str, estimator: Any, path: Path) -> None:
    if fmt == "sklearn-pickle":
        path.write_bytes(pickle.dumps(estimator))
    elif fmt == "joblib":
        import joblib

        joblib.dump(estimator, path)
    else:
        import skops.io as sio

        sio.dump(estimator, path)


SUFFIX = {"sklearn-pickle": ".pkl", "joblib": ".joblib", "skops": ".skops"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """label -> format -> "ok", "unwritable: ..." (the format cannot hold it: not the loader's
    business) or what went wrong."""
    import warnings

    from mlopsctl.loading import load_model
    from mlopsctl.loading.survey import fitted_estimators

    base = tmp_path_factory.mktemp("legit")
    out: dict[str, dict[str, str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, fitted in enumerate(fitted_estimators()):
            row: dict[str, str] = {}
            paths = {}
            for fmt in FORMATS:  # all written before predicting: random states stay equal
                path = base / f"{i}{SUFFIX[fmt]}"
                try:
                    _write(fmt, fitted.estimator, path)
                    paths[fmt] = path
                except Exception as exc:
                    row[fmt] = f"unwritable: {type(exc).__name__}: {str(exc)[:100]}"
            expected = _outputs(fitted.estimator, fitted.x)
            for fmt, path in paths.items():
                try:
                    loaded = load_model(path, fmt)
                except Exception as exc:
                    row[fmt] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    continue
                got = _outputs(loaded, fitted.x)
                differ = [k for k in expected if k not in got or not _same(expected[k], got[k])]
                row[fmt] = "ok" if not differ and got.keys() == expected.keys() else \
                    f"outputs differ: {differ or sorted(got.keys() ^ expected.keys())}"
                path.unlink()
            label = fitted.label if fitted.label not in out else f"{fitted.label}#{i}"
            out[label] = row
    return out


def _failures(results: dict[str, dict[str, str]], fmt: str) -> list[str]:
    return [f"{label}: {row[fmt]}" for label, row in results.items()
            if fmt in row and row[fmt] != "ok" and not row[fmt].startswith("unwritable")]


def test_the_corpus_is_every_estimator_and_the_extras(results: dict[str, dict[str, str]]) -> None:
    from sklearn.utils import all_estimators

    assert len(results) >= len(all_estimators()) // 2
    for label in ("Pipeline[ColumnTransformer+forest]", "LogisticRegression[sparse input]",
                  "LogisticRegression[multiclass strings, frame]"):
        assert label in results


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_legitimate_model_loads_and_predicts_identically(
        fmt: str, results: dict[str, dict[str, str]]) -> None:
    failures = _failures(results, fmt)
    assert failures == [], f"{len(failures)} {fmt} files did not load or predict identically"


def test_figure_legitimate_models_that_load(results: dict[str, dict[str, str]]) -> None:
    total = len(results)
    loading = [label for label, row in results.items()
               if all(v == "ok" or v.startswith("unwritable") for v in row.values())]
    per_format = {fmt: sum(row.get(fmt) == "ok" for row in results.values()) for fmt in FORMATS}
    unwritable = {fmt: sum(row.get(fmt, "").startswith("unwritable") for row in results.values())
                  for fmt in FORMATS}
    print(f"\n{len(loading)} of {total} legitimate models load "
          + "(" + ", ".join(f"{fmt} {per_format[fmt]}" for fmt in FORMATS) + "; "
          + ", ".join(f"{fmt} cannot write {n}" for fmt, n in unwritable.items() if n) + ")")
    for label, row in results.items():
        for fmt, value in row.items():
            if value != "ok" and not value.startswith("unwritable"):
                print(f"  {label} [{fmt}]: {value}")
    assert len(loading) == total


# --- through the real CLI ---------------------------------------------------------------------

CARD = ("--description", "a model of the legitimate corpus", "--intended-use",
        "tests of the loader only")


def _frame_models() -> dict[str, tuple[Any, Any, Any, str]]:
    """name -> (fitted estimator, train frame, holdout frame, format)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def split(frame: Any) -> tuple[Any, Any]:
        train, holdout = train_test_split(frame, test_size=0.3, random_state=0)
        return train, holdout

    def xy(frame: Any) -> tuple[Any, Any]:
        return frame.drop(columns=["y"]), frame["y"]

    cancer = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "y"})
    iris = load_iris(as_frame=True)
    iris_frame = iris.frame.rename(columns={"target": "y"})
    iris_frame["y"] = np.asarray(iris.target_names)[iris.target]  # string labels
    diabetes = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    mixed = cancer.iloc[:, :4].copy()
    mixed["size"] = np.where(cancer["mean radius"] > 14, "large", "small")
    mixed["y"] = cancer["y"]

    out: dict[str, tuple[Any, Any, Any, str]] = {}
    train, hold = split(cancer)
    out["binary"] = (make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
                     .fit(*xy(train)), train, hold, "sklearn-pickle")
    train, hold = split(iris_frame)
    out["multiclass"] = (LogisticRegression(max_iter=1000).fit(*xy(train)), train, hold,
                         "joblib")
    train, hold = split(diabetes)
    out["regressor"] = (Ridge().fit(*xy(train)), train, hold, "skops")
    train, hold = split(mixed)
    columns = ColumnTransformer([("num", StandardScaler(), list(mixed.columns[:4])),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["size"])])
    out["columns"] = (make_pipeline(columns, RandomForestClassifier(
        n_estimators=20, random_state=0)).fit(*xy(train)), train, hold, "joblib")
    train, hold = split(cancer)
    sparse_lr = make_pipeline(StandardScaler(), LogisticRegression(
        penalty="l1", solver="liblinear", C=0.5)).fit(*xy(train))
    sparse_lr[-1].sparsify()  # coef_ becomes a scipy.sparse matrix
    out["sparse"] = (sparse_lr, train, hold, "sklearn-pickle")
    return out


@pytest.mark.slow
def test_legitimate_models_pass_the_real_validate(registry: Path) -> None:
    from scipy import sparse

    models = _frame_models()
    assert sparse.issparse(models["sparse"][0][-1].coef_)
    for name, (estimator, train, hold, fmt) in models.items():
        artifact = registry / f"{name}{SUFFIX[fmt]}"
        _write(fmt, estimator, artifact)
        write(registry / f"{name}-train.csv", train.to_csv(index=False))
        write(registry / f"{name}-holdout.csv", hold.to_csv(index=False))
        bumped = run("bump", name, "--artifact", artifact, "--data", f"{name}-train.csv", *CARD)
        assert bumped.code == 0, bumped.err

        result = run("validate", f"{name}@0.1.0", "--latency-runs", "5", "--json", "--data",
                     f"{name}-holdout.csv", "--target", "y")

        report = json.loads(result.out) if result.out.strip() else None
        assert report is not None, (name, result.code, result.err)
        assert report["status"] in ("passed", "failed"), (name, report)  # scored, not refused
        assert result.code == (0 if report["passed"] else 1)
        metrics = report["metrics"]
        if name == "regressor":
            assert report["task"] == "regression" and metrics["r2"]["recomputed"] > 0.3
        else:
            assert report["task"] == "classification"
            assert metrics["accuracy"]["recomputed"] > 0.85, (name, metrics)
