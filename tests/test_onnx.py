"""ONNX, the format that carries no code: converted with skl2onnx, run by onnxruntime, and
validated end to end like a pickle (metrics recomputed, gates, report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run, write

CARD = ("--description", "flags malignant tumours", "--intended-use", "research triage only")


def _convert(model: Any, width: int, **options: Any) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, width]))],
                  target_opset=17, **options)
    return bytes(onx.SerializeToString())


@pytest.fixture(scope="module")
def cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    return train_test_split(frame, test_size=0.3, random_state=0)


def test_an_onnx_classifier_validates_with_the_same_metrics_as_scikit_learn(
        registry: Path, cancer: tuple[Any, Any]) -> None:
    from sklearn import metrics as m
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, holdout = cancer
    x, y = train.drop(columns=["target"]), train["target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    artifact = write(registry / "model.onnx", _convert(model, x.shape[1]))
    write(registry / "holdout.csv", holdout.to_csv(index=False))
    write(registry / "train.csv", train.to_csv(index=False))
    hx, hy = holdout.drop(columns=["target"]), holdout["target"]
    accuracy = float(m.accuracy_score(hy, model.predict(hx)))
    write(registry / "metrics.json", json.dumps({"accuracy": accuracy}))
    assert run("bump", "onnxclf", "--artifact", artifact, "--metrics", "metrics.json",
               "--data", "train.csv", *CARD).code == 0

    result = run("validate", "onnxclf@0.1.0", "--latency-runs", "20", "--json",
                 "--data", "holdout.csv", "--target", "target")

    report = json.loads(result.out)
    assert report["status"] != "refused", report
    assert report["task"] == "classification"
    assert report["metrics"]["accuracy"]["recomputed"] == pytest.approx(accuracy, abs=0.01)
    assert "roc_auc" in report["metrics"]
    assert report["model_class"] == "OnnxModel"
    assert result.code == (0 if report["passed"] else 1)


def test_an_onnx_regressor_gets_regression_metrics(registry: Path) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True).frame
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = Ridge().fit(x, y)
    artifact = write(registry / "ridge.onnx", _convert(model, x.shape[1]))
    write(registry / "holdout.csv", frame.to_csv(index=False))
    assert run("bump", "ridge", "--artifact", artifact).code == 0

    result = run("validate", "ridge@0.1.0", "--latency-runs", "10", "--json",
                 "--data", "holdout.csv", "--target", "target")

    report = json.loads(result.out)
    assert report["task"] == "regression", report
    assert set(report["metrics"]) >= {"mae", "rmse", "r2"}
    assert report["metrics"]["r2"]["recomputed"] == pytest.approx(model.score(x, y), abs=1e-3)


def test_a_file_that_is_not_onnx_is_refused_cleanly(registry: Path) -> None:
    artifact = write(registry / "fake.onnx", b"\x08\x07this is not a model")
    write(registry / "holdout.csv", "a,y\n1,0\n")
    assert run("bump", "fake", "--artifact", artifact).code == 0

    result = run("validate", "fake@0.1.0", "--data", "holdout.csv", "--target", "y")

    assert result.code == 1
    assert "not a loadable ONNX model" in result.err + result.out
