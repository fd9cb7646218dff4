"""The old system's documented Python examples, run with only the import path changed, on a
real registry (real scikit-learn models, real validation in the worker, real promotions).

Each example is quoted as the old documentation wrote it; the assertions after it check that
it does what it says here, and that a gate's refusal comes back as a result naming the gate."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import IDENTITY, git, run, write

ROOT = Path(__file__).resolve().parent.parent
OLD_HASH = "cdd01ef066bc6cf2"  # the old system's constant


@pytest.fixture(scope="module")
def breast_cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    return train_test_split(frame, test_size=0.3, random_state=0)


@pytest.fixture
def project(registry: Path, breast_cancer: tuple[Any, Any]) -> Path:
    """A registry with data/train.csv, data/holdout.csv (committed), a trained model.pkl and
    a config.json in the work tree, as a user of the old system would have them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, holdout = breast_cancer
    (registry / "data").mkdir()
    train.to_csv(registry / "data" / "train.csv", index=False)
    holdout.to_csv(registry / "data" / "holdout.csv", index=False)
    write(registry / ".gitignore", "model.pkl\nconfig.json\n")
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "data")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(train.drop(columns=["target"]), train["target"])
    write(registry / "model.pkl", pickle.dumps(model))
    write(registry / "config.json", json.dumps({"C": 1.0}))
    return registry


def training_arrays(breast_cancer: tuple[Any, Any]) -> tuple[Any, Any]:
    train, _ = breast_cancer
    return train.drop(columns=["target"]).to_numpy(), train["target"].to_numpy()


# --- the old examples -----------------------------------------------------------------------------


def test_configuration_example(project: Path) -> None:
    from mlopsctl import MLOpsConfig, MLOpsManager

    config = MLOpsConfig(
        storage_root="./mlops_production",
        constitutional_hash="cdd01ef066bc6cf2",
        performance_targets={
            'response_time_ms': 2000,
            'constitutional_compliance': 0.95,
            'cost_savings': 0.74,
            'availability': 0.999,
            'model_accuracy': 0.90
        }
    )
    manager = MLOpsManager(config)
    assert manager.root == project
    assert manager.config.performance_targets["cost_savings"] == 0.74
    assert manager.project.config.performance_targets.model_accuracy == 0.90
    # The old constant is not this registry's pin: reported, not silently accepted.
    assert manager.constitutional_hash != OLD_HASH
    assert manager.constitutional_hash_verified is False
    assert MLOpsManager().constitutional_hash_verified is True

    from mlopsctl import UsageError

    with pytest.raises(UsageError, match="unknown performance target"):
        MLOpsConfig(performance_targets={"accuracy": 0.9})


def test_versioning_and_deployment_examples(project: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from mlopsctl import MLOpsManager, VersionPolicy

    seed = MLOpsManager().create_model_version("production_model", "model.pkl",
                                               version="1.0.0")
    assert seed.version == "1.0.0"

    # Basic Model Versioning, as documented.
    mlops = MLOpsManager()
    model_version = mlops.create_model_version(
        model_name="production_model",
        model_path="./model.pkl",
        config_path="./config.json",
        performance_metrics={
            "accuracy": 0.92,
            "constitutional_compliance": 0.97,
            "response_time_ms": 450
        },
        version_policy=VersionPolicy.MINOR
    )

    print(f"Created version: {model_version.version}")
    print(f"Constitutional compliance: {model_version.constitutional_compliance_score}")

    # Model Deployment, as documented.
    deployment_result = mlops.deploy_model(
        model_name="production_model",
        model_version="1.1.0",
        skip_staging=False  # Run full validation
    )

    print(f"Deployment status: {deployment_result.deployment_status}")
    print(f"Staging validation: {deployment_result.staging_validation_passed}")
    print(f"Production promotion: {deployment_result.production_promotion_success}")

    out = capsys.readouterr().out
    assert "Created version: 1.1.0" in out
    # No holdout and an incomplete card: the score is the best still reachable, below 95 %.
    assert model_version.compliance_source == "forecast"
    assert model_version.constitutional_compliance_score is not None
    assert model_version.constitutional_compliance_score < 0.95
    assert model_version.model_id == "production_model@1.1.0"
    assert model_version.git_commit_hash == git(project, "rev-parse",
                                                "production_model@v1.1.0^{commit}")
    # The version cannot be validated (no holdout): refused, with the gate and the reason.
    assert "Deployment status: DeploymentStatus.REFUSED" in out
    assert deployment_result.gate == "validation"
    assert "no passing validation for staging" in (deployment_result.reason or "")
    assert deployment_result.hint and "mlopsctl validate" in deployment_result.hint
    assert deployment_result.staging_validation_passed is False
    assert deployment_result.production_promotion_success is False
    assert "production_model#" not in git(project, "tag", "-l")


def test_production_integration_example(project: Path, breast_cancer: tuple[Any, Any]) -> None:
    from mlopsctl.production_integration import create_production_mlops_integration

    X_train, y_train = training_arrays(breast_cancer)  # the example's names

    # Production Integration, as documented.
    integration = create_production_mlops_integration()
    results = integration.train_and_version_model(X_train, y_train, "my_model")
    deployment = integration.deploy_model_with_mlops(
        "my_model", results['mlops_info']['model_version'])

    info = results["mlops_info"]
    assert info["model_version"] == "0.1.0"
    assert info["validation_passed"] is True
    assert info["constitutional_compliance_verified"] is True
    assert info["constitutional_compliance_score"] >= 0.95
    assert results["training_results"]["task"] == "classification"
    assert results["performance_metrics"]["accuracy"] > 0.9
    # Lineage: the training rows and the holdout are committed and named by hash.
    manifest = (project / ".mlops/models/my_model/versions/0.1.0.yaml").read_text()
    assert "data/my_model/train.csv" in manifest and "data/my_model/holdout.csv" in manifest
    assert git(project, "ls-files", "data/my_model").split() == [
        "data/my_model/holdout.csv", "data/my_model/train.csv"]
    card = (project / ".mlops/models/my_model/model.yaml").read_text()
    assert "holdout:" in card and "intended_use:" in card and "description:" in card
    assert deployment["status"] == "deployed", deployment
    assert deployment["staging_validation_passed"] is True
    assert deployment["production_promotion_success"] is True
    assert deployment["deployment_id"].startswith("my_model#production#")
    shown = json.loads(run("show", "--json").out)
    assert shown["my_model"]["stage"] == {"staging": "v0.1.0", "production": "v0.1.0"}

    # Health check, as documented.
    health = integration.validate_integration_health()
    assert health["overall_healthy"] is True, health
    assert health["constitutional_hash_verified"] is True


def test_deploy_script_health_check_with_the_old_hash(project: Path) -> None:
    from mlopsctl.production_integration import create_production_mlops_integration

    integration = create_production_mlops_integration(constitutional_hash=OLD_HASH)
    health = integration.validate_integration_health()
    assert health['overall_healthy'] is False
    assert health["constitutional_hash_verified"] is False
    assert health["expected_constitutional_hash"] == OLD_HASH
    assert health["constitutional_hash"] != OLD_HASH


# --- beyond the old examples: card, validate, promote, rollback, refusals -------------------------


def test_card_validate_promote_rollback_and_status(project: Path) -> None:
    from mlopsctl import DeploymentStatus, MLOpsManager

    manager = MLOpsManager(project)
    first = manager.create_model_version("clf", "model.pkl", data_paths=["data/train.csv"])
    assert first.compliance_source == "forecast"
    card = manager.set_model_card("clf", description="flags malignant tumours",
                                  intended_use="tests only", holdout="data/holdout.csv",
                                  target="target")
    assert card.holdout is not None and card.holdout.path == "data/holdout.csv"
    assert "model card of clf" in git(project, "log", "-1", "--format=%s")
    report = manager.validate_model("clf", "0.1.0", "staging", latency_runs=20)
    assert report["passed"] is True
    second = manager.create_model_version("clf", "model.pkl", data_paths=["data/train.csv"],
                                          performance_metrics={"accuracy": 0.95})
    assert second.compliance_source == "validation:staging" and second.validation_passed

    skipped = manager.deploy_model("clf", "0.1.0", skip_staging=True)
    assert skipped.deployment_status is DeploymentStatus.REFUSED
    assert skipped.gate == "order" and "not been promoted to staging" in (skipped.reason or "")
    assert skipped.staging_validation_passed is None

    for number in ("0.1.0", "0.2.0"):
        done = manager.deploy_model("clf", number)
        assert done.deployment_status is DeploymentStatus.DEPLOYED, done.reason
        assert done.environments == ["staging", "production"]
        assert done.constitutional_compliance_verified is True
    status = manager.get_model_status("clf")
    live = {row["environment"]: row["live"] for row in status["environments"]}
    assert live == {"staging": "v0.2.0", "production": "v0.2.0"}

    back = manager.rollback_model("clf", environment="production", message="latency")
    assert back.deployment_status is DeploymentStatus.ROLLED_BACK
    assert back.model_version == "0.1.0" and back.deployment_id
    assert json.loads(run("show", "--json").out)["clf"]["stage"]["production"] == "v0.1.0"
    again = manager.rollback_model("clf", environment="staging")
    assert again.succeeded and again.model_version == "0.1.0"
    nothing = manager.rollback_model("clf", environment="staging")
    assert nothing.deployment_status is DeploymentStatus.REFUSED
    assert nothing.gate == "check" and "to roll back to" in (nothing.reason or "")

    board = manager.get_mlops_dashboard(scrape=False)
    assert isinstance(board, dict) and "clf" in json.dumps(board)
    doc = back.to_json()
    assert doc["deployment_status"] == "rolled_back" and doc["succeeded"] is True
    json.dumps(doc)


def test_refusals_name_their_gate(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopsctl import MLOpsManager, UsageError

    manager = MLOpsManager(project)
    manager.create_model_version("clf", "model.pkl", data_paths=["data/train.csv"],
                                 holdout="data/holdout.csv", target="target",
                                 description="d", intended_use="u", validate=False)
    # A gate the version fails: the reason names the failing metric and its bound.
    config = project / ".mlops" / "config.yaml"
    text = config.read_text()
    strict = re.sub(r"(accuracy:\s*\{?\s*min:\s*)0\.85", r"\g<1>0.999", text, count=1)
    assert strict != text, text
    config.write_text(strict)
    strict_manager = MLOpsManager(project)
    refused = strict_manager.promote_model("clf", "0.1.0", "staging")
    if refused.gate == "policy":  # the governance pin covers gates: accept the change first
        assert run("policy", "accept", "-m", "stricter accuracy").code == 0
        strict_manager = MLOpsManager(project)
        refused = strict_manager.promote_model("clf", "0.1.0", "staging")
    assert refused.gate == "validation", refused
    assert "accuracy" in (refused.reason or "") and "0.999" in (refused.reason or "")

    # Someone the access file does not know.
    for key, value in {"GIT_AUTHOR_NAME": "Eve", "GIT_AUTHOR_EMAIL": "eve@example.com",
                       "GIT_COMMITTER_NAME": "Eve",
                       "GIT_COMMITTER_EMAIL": "eve@example.com"}.items():
        monkeypatch.setenv(key, value)
    outsider = MLOpsManager(project).promote_model("clf", "0.1.0", "staging")
    assert outsider.gate == "access" and "eve@example.com" in (outsider.reason or "")
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)

    # A drifted policy.
    policy = project / ".mlops" / "policy.yaml"
    policy.write_text(policy.read_text().replace("weight: 3", "weight: 4", 1))
    drifted = MLOpsManager(project).promote_model("clf", "0.1.0", "staging")
    assert drifted.gate == "policy", drifted

    # Misuse is an exception, typed.
    with pytest.raises(UsageError, match="unknown environment"):
        MLOpsManager(project).promote_model("clf", "0.1.0", "qa")


def test_readme_python_example_registers_a_promotable_version(project: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"From Python.*?```python\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md has no Python API example"
    code = match.group(1)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the example, verbatim
    version = namespace["v"]
    assert version.validation_passed is True
    assert version.constitutional_compliance_score >= 0.95
    result = namespace["result"]
    assert result.deployment_status.value == "deployed", result.reason
    assert json.loads(run("show", "--json").out)["churn"]["stage"]["production"] == \
        f"v{version.version}"


def test_importing_the_api_stays_cheap(tmp_path: Path) -> None:
    code = ("import sys, mlopsctl, mlopsctl.production_integration as p; "
            "print(sorted(m for m in ('sklearn', 'pandas', 'starlette', 'uvicorn', "
            "'prometheus_client', 'dvc') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_approvals_gate_and_approve_model(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from mlopsctl import DeploymentStatus, MLOpsManager

    manager = MLOpsManager(project)
    manager.create_model_version("clf", "model.pkl", data_paths=["data/train.csv"],
                                 holdout="data/holdout.csv", target="target",
                                 description="d", intended_use="u")
    config = project / ".mlops" / "config.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["environments"]["staging"]["approvals"] = 1
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    access = project / ".mlops" / "access.yaml"
    members = yaml.safe_load(access.read_text())
    members["members"].append({"email": "eve@example.com", "roles": ["releaser"]})
    access.write_text(yaml.safe_dump(members, sort_keys=False))
    assert run("policy", "accept", "-m", "one approval for staging").code == 0
    git(project, "add", ".mlops/access.yaml")
    git(project, "commit", "-q", "-m", "eve releases")

    refused = MLOpsManager(project).promote_model("clf", "0.1.0", "staging")
    assert refused.deployment_status is DeploymentStatus.REFUSED
    assert refused.gate == "approval" and "needs 1 approval" in (refused.reason or "")

    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "eve@example.com")
    entry = MLOpsManager(project).approve_model("clf", "0.1.0", "staging", "looks right")
    assert entry["approver"] == "eve@example.com"
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    done = MLOpsManager(project).promote_model("clf", "0.1.0", "staging")
    assert done.deployment_status is DeploymentStatus.DEPLOYED, done.reason
