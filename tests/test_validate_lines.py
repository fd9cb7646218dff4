"""What `validate` and `promote` say (issue 9): a failed gate's error line names what failed, a
holdout remembered in the card is announced (and `--no-remember` avoids it), `--drop` takes an
ID column out of the holdout. Real registry, real classifier, real worker."""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import git, isolate, make_repo, run

MODEL = "clf"
CARD = Path(".mlops") / "models" / MODEL / "model.yaml"


def ok(*args: str) -> str:
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(args)} -> {result.code}\n{result.err}"
    return result.err


def build(base: Path) -> Path:
    """0.1.0 with data lineage and a complete card, 0.2.0 without data lineage; no holdout in
    the card yet, nothing validated."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    repo = make_repo(base / "repo")
    frame = load_breast_cancer(as_frame=True).frame
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0)
    (repo / "data").mkdir()
    train.to_csv(repo / "data" / "train.csv", index=False)
    holdout.to_csv(repo / "data" / "holdout.csv", index=False)
    holdout.assign(id=range(len(holdout))).to_csv(repo / "data" / "holdout_ids.csv", index=False)
    (repo / ".gitignore").write_text("model.pkl\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    os.chdir(repo)
    ok("init")
    x, y = train.drop(columns=["target"]), train["target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    (repo / "model.pkl").write_bytes(pickle.dumps(model))
    ok("bump", MODEL, "--artifact", "model.pkl", "--data", "data/train.csv",
       "--description", "flags malignant tumours", "--intended-use", "tests only")
    ok("bump", MODEL, "--artifact", "model.pkl")  # 0.2.0: no data lineage
    return repo


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("validate-lines")
    old = os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        (root / "home").mkdir()
        isolate(mp, root / "home")
        try:
            build(root)
        finally:
            os.chdir(old)
    return root


@pytest.fixture
def repo(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(prepared / "repo", tmp_path / "repo", symlinks=True)
    shutil.copytree(prepared / "home", tmp_path / "home", symlinks=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "repo")
    return tmp_path / "repo"


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def holdout_in_card(repo: Path) -> dict | None:
    return yaml.safe_load((repo / CARD).read_text()).get("holdout")


RUNS = ("--latency-runs", "3")


def test_a_remembered_holdout_is_announced_and_no_remember_avoids_it(repo: Path) -> None:
    before = head(repo)
    err = ok("validate", f"{MODEL}@0.1.0", "--data", "data/holdout.csv", "--target", "target",
             "--no-remember", *RUNS)
    assert head(repo) == before and holdout_in_card(repo) is None
    assert "recorded" not in err
    err = ok("validate", f"{MODEL}@0.1.0", "--data", "data/holdout.csv", "--target", "target",
             *RUNS)
    assert "recorded data/holdout.csv (target 'target') as the holdout in clf's model card " \
           "(committed, " in err
    assert "--no-remember" in err
    assert f"git revert {git(repo, 'rev-parse', 'HEAD')[:8]}" in err
    assert holdout_in_card(repo) == {"path": "data/holdout.csv", "target": "target"}
    assert git(repo, "rev-parse", "HEAD~1") == before
    assert git(repo, "diff", "--name-only", "HEAD~1", "HEAD") == CARD.as_posix()


def test_validate_and_promote_name_the_failed_gates_and_rules(repo: Path) -> None:
    result = run("validate", f"{MODEL}@0.2.0", "--data", "data/holdout.csv", "--target",
                 "target", *RUNS)
    assert result.code == 1, result.err
    line = re.search(r"error: clf@0.2.0 failed staging gates: (.*)", result.err)
    assert line, result.err
    assert re.fullmatch(r"compliance \d+(\.\d+)? % < 95 % \(lineage-recorded\)", line[1]), line[1]
    assert "mlopsctl bump clf --data PATH" in result.err  # the hint: how to fix it
    # promote validates again with the card's holdout, and says the same.
    result = run("promote", MODEL, "0.2.0", "--to", "staging")
    assert result.code == 1, result.err
    assert re.search(r"error: clf@0.2.0 failed staging gates: compliance \d+(\.\d+)? % < 95 % "
                     r"\(lineage-recorded\)", result.err), result.err


def test_drop_takes_an_id_column_out_of_the_holdout(repo: Path) -> None:
    result = run("validate", f"{MODEL}@0.1.0", "--data", "data/holdout_ids.csv", "--target",
                 "target", "--drop", "id", "--no-remember", *RUNS)
    assert result.code == 0, result.err
