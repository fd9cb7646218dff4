"""`mlopsctl init --template NAME` and `--ci github|gitlab`: what they write, that it is pinned
and checks clean, that the gates work on real scikit-learn models, and that the generated
workflows are valid (check-jsonschema's built-in GitHub and GitLab schemas, offline)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import git, run

from mlopsctl.cli import COMMANDS

BIN = Path(sys.executable).parent


def ok(*args: str | Path):  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 0, f"mlopsctl {' '.join(map(str, args))}: {result.out}{result.err}"
    return result


def config(repo: Path) -> dict:
    return yaml.safe_load((repo / ".mlops" / "config.yaml").read_text())


def lint(path: Path, schema: str) -> None:
    proc = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def run_lines(workflow: dict) -> list[str]:
    """Every shell line of a GitHub workflow's steps or a GitLab job's scripts."""
    lines: list[str] = []
    for job in (workflow.get("jobs") or {k: v for k, v in workflow.items()
                                         if isinstance(v, dict) and "script" in v}).values():
        for step in job.get("steps", []):
            lines += str(step.get("run", "")).splitlines()
        for key in ("before_script", "script"):
            for item in job.get(key, []):
                lines += str(item).splitlines()
    lines += [str(item) for item in workflow.get("default", {}).get("before_script", [])]
    return [line.strip() for line in lines if line.strip()]


# --- templates ------------------------------------------------------------------------------------


def test_minimal_template(repo: Path) -> None:
    ok("init", "--template", "minimal")
    envs = config(repo)["environments"]
    assert set(envs["staging"]["gates"]) == {"compliance", "latency_p95_ms"}
    assert envs["production"]["requires"] == ["staging"]
    assert not (repo / ".mlops" / "models").exists()
    assert ok("policy", "check").code == 0
    assert ok("check").code == 0


def test_classifier_template_gates_and_card(repo: Path) -> None:
    ok("init", "--template", "sklearn-classifier", "--model", "churn")
    envs = config(repo)["environments"]
    assert {"accuracy", "precision", "recall", "f1", "roc_auc"} <= set(envs["staging"]["gates"])
    assert envs["production"]["gates"]["accuracy"]["min"] > envs["staging"]["gates"]["accuracy"][
        "min"]
    card = yaml.safe_load((repo / ".mlops" / "models" / "churn" / "model.yaml").read_text())
    assert card["task"] == "classification"
    assert card["holdout"] == {"path": "data/holdout.csv", "target": "label"}
    assert card["owner"] == "ada@example.com"
    assert git(repo, "status", "--porcelain") == ""  # all committed
    assert ok("check").code == 0


def test_regressor_template_gates_mae_and_rmse_per_model(repo: Path) -> None:
    ok("init", "--template", "sklearn-regressor", "--model", "house")
    staging = config(repo)["environments"]["staging"]
    assert staging["gates"]["r2"] == {"min": 0.7}
    assert set(staging["model_gates"]["house"]) == {"mae", "rmse"}
    card = yaml.safe_load((repo / ".mlops" / "models" / "house" / "model.yaml").read_text())
    assert card["task"] == "regression"
    assert ok("check").code == 0


@pytest.mark.parametrize("args", [("--template", "tensorflow"), ("--template", "minimal",
                                                                  "--model", "Bad Name"),
                                  ("--ci", "jenkins")])
def test_bad_template_arguments_exit_2_and_write_nothing(repo: Path, args: tuple[str, ...]
                                                         ) -> None:
    result = run("init", *args)
    assert result.code == 2, result
    assert not (repo / ".mlops").exists()


def test_a_template_on_an_existing_registry_is_refused(registry: Path) -> None:
    result = run("init", "--template", "minimal")
    assert result.code == 2
    assert "policy accept" in result.err


def _holdout(repo: Path, train, frame, target: str) -> None:  # type: ignore[no-untyped-def]
    (repo / "data").mkdir(exist_ok=True)
    frame.to_csv(repo / "data" / "holdout.csv", index=False)
    train.to_csv(repo / "data" / "train.csv", index=False)
    git(repo, "add", "data/holdout.csv", "data/train.csv")
    git(repo, "commit", "-q", "-m", "holdout")


def test_classifier_template_validates_a_real_model_from_the_cards_holdout(repo: Path) -> None:
    import pickle

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ok("init", "--template", "sklearn-classifier", "--model", "cancer")
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    train, holdout = frame.iloc[::2], frame.iloc[1::2]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(train.drop(columns="label"), train["label"])
    _holdout(repo, train, holdout, "label")
    (repo / "model.pkl").write_bytes(pickle.dumps(model))
    ok("bump", "cancer", "--artifact", "model.pkl", "--data", "data/train.csv",
       "--intended-use", "tests",
       "--description", "breast cancer")
    result = run("validate", "cancer@0.1.0", "--env", "staging")  # no --data: the card's
    assert result.code == 0, result.out + result.err
    assert "roc_auc" in result.out


def test_regressor_template_gates_mae_in_the_targets_units(repo: Path) -> None:
    import pickle

    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    ok("init", "--template", "sklearn-regressor", "--model", "diabetes")
    frame = load_diabetes(as_frame=True).frame
    train, holdout = frame.iloc[::2], frame.iloc[1::2]
    model = LinearRegression().fit(train.drop(columns="target"), train["target"])
    _holdout(repo, train, holdout, "target")
    (repo / "model.pkl").write_bytes(pickle.dumps(model))
    ok("bump", "diabetes", "--artifact", "model.pkl", "--data", "data/train.csv",
       "--intended-use", "tests",
       "--description", "disease progression")
    # disease progression is in the tens: the template's placeholder MAE bound (10) fails it
    result = run("validate", "diabetes@0.1.0", "--env", "staging")
    assert result.code == 1, result.out + result.err
    assert re.search(r"error: .*\bmae\b", result.err), result.err
    assert "compliance" not in result.err.split("error:", 1)[1].split("\n", 1)[0]


# --- CI workflows -------------------------------------------------------------------------------


def test_github_workflow_lints_and_runs_the_guard(repo: Path) -> None:
    ok("init", "--ci", "github")
    path = repo / ".github" / "workflows" / "mlopsctl.yml"
    lint(path, "vendor.github-workflows")
    flow = yaml.safe_load(path.read_text())
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert "pull_request" in triggers and triggers["push"]["tags"] == ["*#*#*"]
    text = path.read_text()
    lines = run_lines(flow)
    for expected in ("mlopsctl check --remote", "mlopsctl validate",
                     'mlopsctl check-ref "$GITHUB_REF"',
                     'mlopsctl verify --signatures --trust-anchor "$RUNNER_TEMP/trust-anchor"',
                     'mlopsctl verify --release "$GITHUB_REF"'):
        assert any(expected in line for line in lines), expected
    assert "${{ secrets.MLOPSCTL_KEY }}" in text
    assert "${{ secrets.MLOPSCTL_TRUST_ANCHOR }}" in text  # from outside the repository
    assert "steps.event.outputs.version" in text
    from mlopsctl import __version__

    assert f'MLOPSCTL_VERSION: "{__version__}"' in text
    for line in lines:
        for name in re.findall(r"\bmlopsctl ([a-z][a-z-]*)", line):
            assert name in COMMANDS, line


def test_gitlab_pipeline_lints_and_reports_code_quality(repo: Path) -> None:
    ok("init", "--ci", "gitlab")
    path = repo / ".gitlab-ci.yml"
    lint(path, "vendor.gitlab-ci")
    pipeline = yaml.safe_load(path.read_text())
    check = pipeline["mlopsctl-check"]
    assert check["artifacts"]["reports"]["codequality"] == "gl-code-quality.json"
    assert any("--codequality gl-code-quality.json" in s for s in check["script"])
    event = pipeline["mlopsctl-stage-event"]
    rule = event["rules"][0]["if"]
    pattern = re.search(r"=~ /(.*)/$", rule).group(1)  # type: ignore[union-attr]
    assert re.match(pattern, "churn#production#3")
    assert not re.match(pattern, "churn@v1.2.0") and not re.match(pattern, "churn#prod!#4")
    lines = run_lines(pipeline)
    assert any("verify --signatures --trust-anchor \"$MLOPSCTL_TRUST_ANCHOR\"" in x
               for x in lines)
    assert any('verify --release "$CI_COMMIT_TAG"' in x for x in lines)


def test_ci_on_an_existing_registry_adds_the_file_and_keeps_a_different_one(
        registry: Path) -> None:
    result = ok("init", "--ci", "gitlab")
    assert ".gitlab-ci.yml" in result.err
    assert git(registry, "log", "-1", "--format=%s") == \
        "mlopsctl: update the registry's configuration"
    assert ok("init", "--ci", "gitlab").code == 0  # idempotent
    (registry / ".gitlab-ci.yml").write_text("stages: [test]\n")
    result = run("init", "--ci", "gitlab")
    assert result.code == 2 and "differs" in result.err
    assert (registry / ".gitlab-ci.yml").read_text() == "stages: [test]\n"
