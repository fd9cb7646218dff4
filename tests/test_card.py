"""`mlopsctl card` (issue 9): edit the model card after the first bump, like `gto annotate`, in
one commit of the card alone that never sweeps in the user's own work; and from the API."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml
from conftest import git, run, write

CARD = ".mlops/models/churn/model.yaml"


@pytest.fixture
def bumped(registry: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    write(registry / "model.pkl", pickle.dumps(LogisticRegression(max_iter=300).fit(x, y)))
    assert run("bump", "churn", "--artifact", "model.pkl").code == 0
    return registry


def card(repo: Path, rev: str = "HEAD") -> dict:
    return yaml.safe_load(git(repo, "show", f"{rev}:{CARD}"))


def test_card_edits_after_the_first_bump_in_one_commit_of_its_own(bumped: Path) -> None:
    write(bumped / "README.md", "my unstaged edit\n")
    write(bumped / "notes.txt", "staged\n")
    git(bumped, "add", "notes.txt")
    status = git(bumped, "status", "--porcelain")
    before = git(bumped, "rev-parse", "HEAD")

    result = run("card", "churn", "--description", "Predicts churn from usage",
                 "--intended-use", "Retention offers; never pricing", "--owner", "ml@example.com")
    assert result.code == 0, result.err
    assert git(bumped, "rev-parse", "HEAD~1") == before
    assert git(bumped, "diff", "--name-only", "HEAD~1", "HEAD") == CARD
    doc = card(bumped)
    assert doc["description"] == "Predicts churn from usage"
    assert doc["intended_use"] == "Retention offers; never pricing"
    assert doc["owner"] == "ml@example.com"
    assert doc["artifact"] == "model.pkl"  # what bump remembered stays
    assert git(bumped, "status", "--porcelain") == status  # the user's work untouched
    assert (bumped / "README.md").read_text() == "my unstaged edit\n"


def test_card_shows_the_card_and_an_unchanged_card_makes_no_commit(bumped: Path) -> None:
    assert run("card", "churn", "--description", "iris").code == 0
    head = git(bumped, "rev-parse", "HEAD")
    again = run("card", "churn", "--description", "iris")
    assert again.code == 0 and "nothing to do" in again.err
    assert git(bumped, "rev-parse", "HEAD") == head
    shown = run("card", "churn", "--json")
    assert shown.code == 0 and json.loads(shown.out)["description"] == "iris"
    assert "description: iris" in run("card", "churn").out


def test_a_completed_card_counts_in_the_forecast(bumped: Path) -> None:
    plan = json.loads(run("bump", "churn", "--dry-run", "--json").out)
    rules = {r["id"]: r["result"] for r in plan["forecast"]["rules"]}
    assert rules["card-complete"] == "fail"
    assert run("card", "churn", "--description", "iris", "--intended-use", "tests").code == 0
    plan = json.loads(run("bump", "churn", "--dry-run", "--json").out)
    rules = {r["id"]: r["result"] for r in plan["forecast"]["rules"]}
    assert rules["card-complete"] == "pass"


def test_card_usage_errors_write_nothing(bumped: Path) -> None:
    head = git(bumped, "rev-parse", "HEAD")
    for args in (("card", "churn", "--target", "y"), ("card", "Bad Name", "--owner", "x"),
                 ("card", "ghost"), ("card", "ghost", "--description", "x")):
        result = run(*args)
        assert result.code == 2, (args, result.err)
    assert git(bumped, "rev-parse", "HEAD") == head
    assert not (bumped / ".mlops" / "models" / "ghost").exists()


def test_the_api_edits_the_card_as_the_cli_does(bumped: Path) -> None:
    from mlopsctl import MLOpsManager

    before = git(bumped, "rev-parse", "HEAD")
    manager = MLOpsManager(bumped)
    got = manager.set_model_card("churn", description="iris", intended_use="tests only")
    assert (got.description, got.intended_use) == ("iris", "tests only")
    assert git(bumped, "rev-parse", "HEAD~1") == before
    assert git(bumped, "diff", "--name-only", "HEAD~1", "HEAD") == CARD
    assert card(bumped)["intended_use"] == "tests only"
