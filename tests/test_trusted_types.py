"""A team's own transformer: refused by default with an error that names it and says how to
allow it; allowed through `trusted_types:` in policy.yaml, under the governance pin."""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run, write

TRANSFORMER = textwrap.dedent('''
    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin

    class Clip(TransformerMixin, BaseEstimator):
        def __init__(self, low=0.0, high=1.0):
            self.low, self.high = low, high
        def fit(self, x, y=None):
            return self
        def transform(self, x):
            return np.clip(np.asarray(x, dtype=float), self.low, self.high)
''')


@pytest.fixture
def team_model(registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    write(registry / "team_transformers.py", TRANSFORMER)
    monkeypatch.syspath_prepend(str(registry))
    sys.modules.pop("team_transformers", None)
    from team_transformers import Clip  # type: ignore[import-not-found]

    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = make_pipeline(Clip(0, 500), LogisticRegression(max_iter=300)).fit(x, y)
    write(registry / "holdout.csv", frame.to_csv(index=False))
    artifact = write(registry / "model.pkl", pickle.dumps(model))
    sys.modules.pop("team_transformers", None)
    assert run("bump", "clipped", "--artifact", artifact).code == 0
    return registry


def _validate() -> tuple[int, dict[str, object], str]:
    result = run("validate", "clipped@0.1.0", "--latency-runs", "10", "--json",
                 "--data", "holdout.csv", "--target", "target")
    return result.code, json.loads(result.out), result.err


def test_an_unknown_class_is_refused_by_name_with_the_way_to_allow_it(team_model: Path) -> None:
    code, report, err = _validate()
    assert code == 1
    assert report["status"] == "refused"
    assert report["refused_globals"] == ["team_transformers.Clip"]
    assert "team_transformers.Clip" in err and "trusted_types" in err


def test_trusted_types_in_the_policy_allow_it_once_accepted(team_model: Path) -> None:
    policy = team_model / ".mlops" / "policy.yaml"
    policy.write_text(policy.read_text().rstrip("\n")
                      + "\ntrusted_types:\n  - team_transformers.Clip\n")
    drifted = run("validate", "clipped@0.1.0", "--data", "holdout.csv", "--target", "target")
    assert drifted.code != 0 and "drift" in drifted.err  # the pin covers trusted types
    assert run("policy", "accept", "-m", "allow our Clip transformer").code == 0

    _, report, err = _validate()

    assert report["status"] in ("passed", "failed"), (report, err)  # loaded and scored
    assert report["model_class"] == "Pipeline"
    assert report["metrics"]["accuracy"]["recomputed"] > 0.85
