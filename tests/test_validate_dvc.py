"""A holdout tracked by DVC (not git): validate pulls it from the DVC remote first."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import git, run


def dvc(root: Path, *args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=root, check=True,
                   capture_output=True)


def test_a_dvc_tracked_holdout_is_pulled_before_validation(registry: Path) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = load_breast_cancer(as_frame=True).frame
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0,
                                      stratify=frame["target"])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(train.drop(columns="target"), train["target"])
    (registry / "model.pkl").write_bytes(pickle.dumps(model))
    (registry / "data").mkdir()
    holdout.to_csv(registry / "data" / "holdout.csv", index=False)

    # Track the holdout with DVC (the file itself is git-ignored), push it to the remote.
    dvc(registry, "add", "data/holdout.csv")
    dvc(registry, "push")
    git(registry, "add", "data/holdout.csv.dvc", "data/.gitignore")
    git(registry, "commit", "-q", "-m", "holdout tracked by DVC")
    assert run("bump", "clf", "--artifact", "model.pkl", "--holdout", "data/holdout.csv",
               "--target", "target", "--description", "d", "--intended-use", "u").code == 0

    # A fresh state: neither the file nor DVC's cache has it.
    (registry / "data" / "holdout.csv").unlink()
    shutil.rmtree(registry / ".dvc" / "cache", ignore_errors=True)

    result = run("validate", "clf@0.1.0", "--latency-runs", "5", "--json")
    assert result.code in (0, 1), result.err
    report = json.loads(result.out)
    assert report["rows"] == len(holdout)
    assert report["holdout"]["path"] == "data/holdout.csv"
    assert (registry / "data" / "holdout.csv").is_file()  # pulled back from the remote
