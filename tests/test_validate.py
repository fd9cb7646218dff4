"""`mlopsctl validate`: real scikit-learn models on datasets shipped with scikit-learn, registered
with `bump`, then fetched, loaded in the worker process, re-scored on a holdout and gated. No mocks.

Every validate call spawns a worker (a few seconds each), so each test registers what it needs in
one repository and keeps the number of validations small.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git, run, write

RUNS = ("--latency-runs", "20")
CARD = ("--description", "flags malignant tumours", "--intended-use",
        "research triage only, never a diagnosis")


# --- data and models (trained once per module; pure bytes, no repository state) ------------------


def _split(frame: Any) -> tuple[Any, Any]:
    from sklearn.model_selection import train_test_split

    return train_test_split(frame, test_size=0.3, random_state=0)


def _xy(frame: Any) -> tuple[Any, Any]:
    return frame.drop(columns=["target"]), frame["target"]


def _classification_metrics(model: Any, frame: Any) -> dict[str, float]:
    from sklearn import metrics as m

    x, y = _xy(frame)
    pred = model.predict(x)
    return {
        "accuracy": float(m.accuracy_score(y, pred)),
        "precision": float(m.precision_score(y, pred)),
        "recall": float(m.recall_score(y, pred)),
        "f1": float(m.f1_score(y, pred)),
        "roc_auc": float(m.roc_auc_score(y, model.predict_proba(x)[:, 1])),
    }


class Hostile:
    """Pickles as a call to os.system: loading it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """Train/holdout splits of breast_cancer, iris and diabetes (pandas, column 'target')."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

    out = {}
    for name, loader in (("cancer", load_breast_cancer), ("iris", load_iris),
                         ("diabetes", load_diabetes)):
        train, holdout = _split(loader(as_frame=True).frame)
        out[name] = (train, holdout)
    return out


@pytest.fixture(scope="module")
def models(data: dict[str, Any]) -> dict[str, Any]:
    """Fitted estimators (objects, pickled by each test in the format it needs)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cancer, iris, diabetes = (data[k][0] for k in ("cancer", "iris", "diabetes"))
    return {
        "good": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        .fit(*_xy(cancer)),
        "dummy": DummyClassifier(strategy="most_frequent").fit(*_xy(cancer)),
        "iris": LogisticRegression(max_iter=1000).fit(*_xy(iris)),
        "ridge": Ridge(alpha=1.0).fit(*_xy(diabetes)),
        "lr": LogisticRegression(max_iter=5000).fit(*_xy(cancer)),
        # single-row p95 about 60 ms on a quiet 2-core machine (300 trees: 14 ms, under the
        # 25 ms gate of the latency test); logistic regression stays under 15 ms even loaded
        "slow": RandomForestClassifier(n_estimators=1500, random_state=0).fit(*_xy(cancer)),
    }


# --- helpers --------------------------------------------------------------------------------------




def holdout_csv(repo: Path, frame: Any, name: str = "holdout.csv") -> Path:
    return write(repo / name, frame.to_csv(index=False))


def metrics_file(repo: Path, metrics: dict[str, float], name: str = "metrics.json") -> Path:
    return write(repo / name, json.dumps(metrics))


def bump(model: str, artifact: Path, *args: str | os.PathLike[str]) -> None:
    result = run("bump", model, "--artifact", artifact, *args)
    assert result.code == 0, result.err


def register(repo: Path, model: str, estimator: Any, train: Any,
             *args: str | os.PathLike[str], filename: str | None = None) -> Path:
    """Pickle ``estimator`` and register it with a complete card and data lineage (so the
    default policy can reach full compliance)."""
    artifact = write(repo / (filename or f"{model}.pkl"), pickle.dumps(estimator))
    train_file = write(repo / f"{model}-train.csv", train.to_csv(index=False))
    bump(model, artifact, "--data", train_file, *CARD, *args)
    return artifact


def validate(ref: str, *args: str | os.PathLike[str]) -> tuple[int, dict[str, Any] | None, str]:
    """Run `validate --json`; (exit code, report or None, stderr)."""
    result = run("validate", ref, *RUNS, "--json", *args)
    report = json.loads(result.out) if result.out.strip() else None
    return result.code, report, result.err


def version_commit(repo: Path, model: str, version: str = "0.1.0") -> str:
    return git(repo, "rev-parse", f"{model}@v{version}^{{commit}}")


def note(repo: Path, commit: str) -> dict[str, Any] | None:
    try:
        text = git(repo, "notes", "--ref=mlops", "show", commit)
    except Exception:  # no note on that commit
        return None
    return json.loads(text)


def manifest(repo: Path, model: str, version: str = "0.1.0") -> dict[str, Any]:
    text = git(repo, "show", f"{model}@v{version}:.mlops/models/{model}/versions/{version}.yaml")
    return yaml.safe_load(text)


def config(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / ".mlops" / "config.yaml").read_text())


def gates_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["gate"]: g for g in report["gates"]}


def rules_by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in report["compliance"]["rules"]}


def blob_path(repo: Path, model: str, version: str = "0.1.0") -> Path:
    from configobj import ConfigObj

    pointer = yaml.safe_load((repo / ".mlops" / "models" / model / "artifacts"
                              / f"{version}.zst.dvc").read_text())
    md5 = pointer["outs"][0]["md5"]
    url = ConfigObj(str(repo / ".dvc" / "config"))['remote "mlops"']["url"]
    return Path(os.path.expanduser(url)) / "files" / "md5" / md5[:2] / md5[2:]


# --- a good model, a lying model ----------------------------------------------------------------


def test_good_model_passes_staging_with_a_full_report_stored_as_a_git_note(
        registry: Path, data: dict[str, Any], models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    honest = _classification_metrics(models["good"], holdout)
    artifact = register(registry, "cancer", models["good"], train,
                        "--metrics", metrics_file(registry, honest))
    holdout_csv(registry, holdout)

    code, report, err = validate("cancer@0.1.0", "--data", "holdout.csv", "--target", "target")

    assert code == 0, err
    assert report is not None
    assert report["schema_version"] == 1
    assert (report["model"], report["version"], report["environment"]) == \
        ("cancer", "0.1.0", "staging")
    assert report["passed"] is True and report["status"] == "passed"
    assert report["task"] == "classification" and report["rows"] == len(holdout)
    assert report["model_class"] == "Pipeline"
    assert set(report["metrics"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    for name, value in honest.items():
        assert report["metrics"][name]["reported"] == pytest.approx(value)
        assert report["metrics"][name]["recomputed"] == pytest.approx(value, abs=1e-9)
    assert report["metrics"]["accuracy"]["recomputed"] > 0.9
    assert report["findings"] == []
    latency = report["latency"]
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["max_ms"]
    assert latency["runs"] == 20
    gates = gates_by_name(report)
    assert set(gates) >= {"accuracy", "precision", "recall", "f1", "latency_p95_ms",
                          "latency_max_ms", "compliance"}
    for name, gate in gates.items():
        assert set(gate) >= {"min", "max", "value", "passed"}
        assert gate["passed"] is True
        assert gate["applicable"] is (name != "r2")  # the regression gate skips a classifier
    assert gates["accuracy"]["min"] == 0.85
    assert gates["accuracy"]["value"] == report["metrics"]["accuracy"]["recomputed"]
    assert gates["latency_p95_ms"]["value"] == latency["p95_ms"]
    assert report["compliance"]["score"] == 1.0
    rules = rules_by_id(report)
    assert len(rules) == 8 and all(r["passed"] for r in rules.values()), rules
    assert report["policy_hash"] == config(registry)["constitutional_hash"]
    recorded = manifest(registry, "cancer")["artifact"]["sha256"]
    assert report["artifact_sha256"] == recorded == hashlib.sha256(
        artifact.read_bytes()).hexdigest()
    assert report["holdout"]["path"] == "holdout.csv" and report["holdout"]["target"] == "target"

    commit = version_commit(registry, "cancer")
    assert report["commit"] == commit
    stored = note(registry, commit)
    assert stored is not None
    assert stored["validations"]["staging"] == report


def test_a_model_that_lies_about_its_metrics_fails(registry: Path, data: dict[str, Any],
                                                   models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    claims = {"accuracy": 0.99, "precision": 0.99, "recall": 0.99, "f1": 0.99, "roc_auc": 0.99}
    register(registry, "liar", models["dummy"], train,
             "--metrics", metrics_file(registry, claims))
    holdout_csv(registry, holdout)

    code, report, err = validate("liar@0.1.0", "--data", "holdout.csv", "--target", "target")

    assert code == 1
    assert "failed staging gates" in err and "accuracy" in err
    assert report is not None and report["passed"] is False and report["status"] == "failed"
    majority = float((holdout["target"] == holdout["target"].mode()[0]).mean())
    accuracy = report["metrics"]["accuracy"]
    assert accuracy["reported"] == 0.99
    assert accuracy["recomputed"] == pytest.approx(majority)
    assert accuracy["recomputed"] < 0.7
    assert report["metrics"]["roc_auc"]["recomputed"] == pytest.approx(0.5)
    findings = " | ".join(report["findings"])
    for name in ("accuracy", "precision", "f1", "roc_auc"):
        assert f"reported {name} = 0.99" in findings
    assert "reported recall" not in findings  # predicting the majority class: recall is 1.0
    rules = rules_by_id(report)
    assert rules["reported-metrics-honest"]["passed"] is False
    assert "accuracy reported 0.99" in rules["reported-metrics-honest"]["detail"]
    assert rules["accuracy-floor"]["passed"] is False
    gates = gates_by_name(report)
    assert gates["accuracy"]["passed"] is False and gates["compliance"]["passed"] is False
    assert report["compliance"]["score"] < 0.95
    assert note(registry, version_commit(registry, "liar"))["validations"]["staging"] == report


# --- tasks: multiclass and regression -------------------------------------------------------------


def test_multiclass_gets_macro_metrics_and_a_regressor_gets_regression_metrics(
        registry: Path, data: dict[str, Any], models: dict[str, Any]) -> None:
    from sklearn import metrics as m

    iris_train, iris_holdout = data["iris"]
    diabetes_train, diabetes_holdout = data["diabetes"]
    register(registry, "iris", models["iris"], iris_train)
    register(registry, "sugar", models["ridge"], diabetes_train)
    holdout_csv(registry, iris_holdout, "iris.csv")
    holdout_csv(registry, diabetes_holdout, "diabetes.csv")

    code, report, err = validate("iris@0.1.0", "--data", "iris.csv", "--target", "target")
    assert code == 0, err
    assert report is not None and report["task"] == "classification"
    x, y = _xy(iris_holdout)
    pred = models["iris"].predict(x)
    recomputed = {k: v["recomputed"] for k, v in report["metrics"].items()}
    assert set(recomputed) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert recomputed["f1"] == pytest.approx(m.f1_score(y, pred, average="macro"))
    assert recomputed["precision"] == pytest.approx(m.precision_score(y, pred, average="macro"))
    assert recomputed["recall"] == pytest.approx(m.recall_score(y, pred, average="macro"))
    assert recomputed["roc_auc"] == pytest.approx(
        m.roc_auc_score(y, models["iris"].predict_proba(x), multi_class="ovr"))

    code, report, err = validate("sugar@0.1.0", "--data", "diabetes.csv", "--target", "target")
    assert report is not None, err
    assert report["task"] == "regression" and report["model_class"] == "Ridge"
    x, y = _xy(diabetes_holdout)
    pred = models["ridge"].predict(x)
    recomputed = {k: v["recomputed"] for k, v in report["metrics"].items()}
    assert set(recomputed) == {"mae", "rmse", "r2"}
    assert recomputed["mae"] == pytest.approx(m.mean_absolute_error(y, pred))
    assert recomputed["rmse"] == pytest.approx(m.mean_squared_error(y, pred) ** 0.5)
    assert recomputed["r2"] == pytest.approx(m.r2_score(y, pred))
    gates = gates_by_name(report)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert gates[name]["applicable"] is False, gates[name]
        assert gates[name]["value"] is None
        assert gates[name]["passed"] is True  # not applicable is not a failure
    assert gates["latency_p95_ms"]["applicable"] is True
    assert gates["latency_p95_ms"]["passed"] is True
    # The default constitution's accuracy-floor and f1-floor rules do not apply to a regressor:
    # they leave the compliance score (applicable rules only). The default regression gate
    # (r2 >= 0.7) does, and a ridge regression on diabetes (r2 about 0.4) fails it.
    rules = rules_by_id(report)
    for rule_id in ("accuracy-floor", "f1-floor"):
        assert rules[rule_id]["applicable"] is False
        assert "does not apply" in rules[rule_id]["detail"]
    assert report["compliance"]["score"] == pytest.approx(1.0)
    assert gates["r2"]["applicable"] is True and gates["r2"]["min"] == 0.7
    assert [g["gate"] for g in report["gates"] if not g["passed"]] == ["r2"]
    assert code == 1 and "r2" in err


# --- latency -------------------------------------------------------------------------------------


def test_a_slow_model_fails_the_latency_gate_a_fast_one_passes(
        registry: Path, data: dict[str, Any], models: dict[str, Any]) -> None:
    # Tighten the staging latency gate (gates are under the governance pin: accept it). The
    # brief's 5 ms is too tight for a LogisticRegression on a loaded 2-core machine (single-row
    # p95 was seen at 2-15 ms); a 1,500-tree forest takes 60 ms and more per row, so 25 ms
    # separates them.
    cfg = config(registry)
    cfg["environments"]["staging"]["gates"]["latency_p95_ms"] = {"max": 25}
    write(registry / ".mlops" / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    assert run("policy", "accept", "-m", "tighter latency gate").code == 0
    train, holdout = data["cancer"]
    register(registry, "forest", models["slow"], train)
    register(registry, "linear", models["lr"], train)
    holdout_csv(registry, holdout)

    code, report, err = validate("forest@0.1.0", "--data", "holdout.csv", "--target", "target")
    assert code == 1
    assert report is not None
    gates = gates_by_name(report)
    assert gates["latency_p95_ms"] == {"gate": "latency_p95_ms", "min": None, "max": 25.0,
                                       "value": report["latency"]["p95_ms"],
                                       "applicable": True, "passed": False}
    assert report["latency"]["p95_ms"] > 25
    assert [g["gate"] for g in report["gates"] if not g["passed"]] == ["latency_p95_ms"]
    assert "failed staging gates: latency_p95_ms" in err

    code, report, err = validate("linear@0.1.0", "--data", "holdout.csv", "--target", "target")
    assert code == 0, err
    assert report is not None and gates_by_name(report)["latency_p95_ms"]["max"] == 25.0
    assert report["latency"]["p95_ms"] <= 25


# --- the holdout ----------------------------------------------------------------------------------


def test_holdout_is_learned_by_the_card_and_reused(registry: Path, data: dict[str, Any],
                                                   models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    register(registry, "cancer", models["good"], train)
    holdout_csv(registry, holdout)
    card_path = registry / ".mlops" / "models" / "cancer" / "model.yaml"

    # No holdout anywhere: a usage error that says how to give one.
    result = run("validate", "cancer@0.1.0", *RUNS)
    assert result.code == 2
    assert "no holdout" in result.err and "hint:" in result.err and "--data" in result.err
    # --data without --target, an unknown environment, an unknown version: usage errors.
    result = run("validate", "cancer@0.1.0", *RUNS, "--data", "holdout.csv")
    assert result.code == 2 and "--target" in result.err
    result = run("validate", "cancer@0.1.0", *RUNS, "--env", "moon", "--data", "holdout.csv",
                 "--target", "target")
    assert result.code == 2 and "moon" in result.err
    result = run("validate", "cancer@9.9.9", *RUNS, "--data", "holdout.csv", "--target", "target")
    assert result.code == 2 and "9.9.9" in result.err
    result = run("validate", "cancer@0.1.0", *RUNS, "--data", "missing.csv", "--target", "target")
    assert result.code == 2 and "missing.csv" in result.err
    assert note(registry, version_commit(registry, "cancer")) is None
    assert "holdout" not in yaml.safe_load(card_path.read_text())

    head = git(registry, "rev-parse", "HEAD")
    code, report, err = validate("cancer@0.1.0", "--data", "holdout.csv", "--target", "target")
    assert code == 0, err
    card = yaml.safe_load(card_path.read_text())
    assert card["holdout"] == {"path": "holdout.csv", "target": "target"}
    committed = yaml.safe_load(git(registry, "show", "HEAD:.mlops/models/cancer/model.yaml"))
    assert committed["holdout"] == card["holdout"]
    assert git(registry, "rev-parse", "HEAD~1") == head
    assert git(registry, "status", "--porcelain", "--", ".mlops") == ""

    code, report, err = validate("cancer@0.1.0")
    assert code == 0, err
    assert report is not None
    assert report["holdout"]["path"] == "holdout.csv" and report["holdout"]["target"] == "target"
    assert report["rows"] == len(holdout)


def test_a_target_column_missing_from_the_holdout_is_a_usage_error(
        registry: Path, data: dict[str, Any], models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    register(registry, "cancer", models["good"], train)
    holdout_csv(registry, holdout)

    result = run("validate", "cancer@0.1.0", *RUNS, "--data", "holdout.csv",
                 "--target", "diagnosis")

    assert "diagnosis" in result.err
    assert note(registry, version_commit(registry, "cancer")) is None
    assert result.code == 2


def test_parquet_holdout(registry: Path, data: dict[str, Any], models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    register(registry, "cancer", models["good"], train)
    buf = io.BytesIO()
    holdout.to_parquet(buf, index=False)
    write(registry / "holdout.parquet", buf.getvalue())

    code, report, err = validate("cancer@0.1.0", "--data", "holdout.parquet",
                                 "--target", "target")

    assert code == 0, err
    assert report is not None
    assert report["holdout"]["path"] == "holdout.parquet" and report["rows"] == len(holdout)
    assert report["metrics"]["accuracy"]["recomputed"] > 0.9


# --- the policy pin -------------------------------------------------------------------------------


def test_a_drifted_policy_blocks_validation_until_accepted(
        registry: Path, data: dict[str, Any], models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    holdout_csv(registry, holdout)
    register(registry, "cancer", models["good"], train,
             "--holdout", "holdout.csv", "--target", "target")
    pinned = config(registry)["constitutional_hash"]
    policy = registry / ".mlops" / "policy.yaml"
    rules = yaml.safe_load(policy.read_text())
    rules["rules"][0]["weight"] = 2.0  # a real change (a comment alone is not drift)
    policy.write_text(yaml.safe_dump(rules, sort_keys=False))

    result = run("validate", "cancer@0.1.0", *RUNS)
    assert result.code == 1
    assert pinned in result.err and "drift" in result.err
    assert note(registry, version_commit(registry, "cancer")) is None

    accepted = run("policy", "accept", "-m", "weigh the first rule double")
    assert accepted.code == 0, accepted.err
    repinned = config(registry)["constitutional_hash"]
    assert repinned != pinned and repinned in result.err  # the error named the new hash
    code, report, err = validate("cancer@0.1.0")  # holdout from `bump --holdout`
    assert code == 0, err
    assert report is not None and report["policy_hash"] == repinned


# --- hostile and damaged artifacts ----------------------------------------------------------------


def _hostile_pickle(path: Path, command: str) -> Path:
    return write(path, pickle.dumps(Hostile(command)))


def _hostile_joblib(path: Path, command: str) -> Path:
    import joblib

    joblib.dump(Hostile(command), path)
    return path


@pytest.mark.parametrize(("filename", "make", "fmt"), [
    ("evil.pkl", _hostile_pickle, "sklearn-pickle"),
    ("evil.joblib", _hostile_joblib, "joblib"),
], ids=["pickle", "joblib"])
def test_a_hostile_artifact_is_refused_without_running_and_the_refusal_is_recorded(
        registry: Path, tmp_path: Path, data: dict[str, Any], filename: str, make: Any,
        fmt: str) -> None:
    marker = tmp_path / "pwned"
    artifact = make(registry / filename, f"touch {marker}")
    bump("evil", artifact)
    assert manifest(registry, "evil")["artifact"]["format"] == fmt
    holdout_csv(registry, data["cancer"][1])

    code, report, err = validate("evil@0.1.0", "--data", "holdout.csv", "--target", "target")

    assert code == 1
    assert "refused" in err
    assert not marker.exists(), "the hostile payload ran"
    assert report is not None and report["status"] == "refused" and report["passed"] is False
    assert "posix.system" in report["refused_globals"]
    stored = note(registry, version_commit(registry, "evil"))
    assert stored is not None
    assert stored["validations"]["staging"]["status"] == "refused"
    assert stored["validations"]["staging"]["passed"] is False
    card = yaml.safe_load((registry / ".mlops" / "models" / "evil" / "model.yaml").read_text())
    assert "holdout" not in card  # a refused model teaches the card nothing


def test_a_tampered_blob_fails_before_the_model_is_loaded(
        registry: Path, data: dict[str, Any], models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    register(registry, "cancer", models["good"], train)
    holdout_csv(registry, holdout)
    blob = blob_path(registry, "cancer")
    blob.chmod(0o644)
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    blob.write_bytes(bytes(raw))

    result = run("validate", "cancer@0.1.0", *RUNS, "--data", "holdout.csv",
                 "--target", "target")

    assert result.code == 1, result.err
    assert result.err.startswith("error:")
    assert result.out == ""
    assert note(registry, version_commit(registry, "cancer")) is None  # never reached the worker


def test_a_skops_artifact_validates(registry: Path, data: dict[str, Any],
                                    models: dict[str, Any]) -> None:
    import skops.io as sio

    train, holdout = data["cancer"]
    artifact = registry / "cancer.skops"
    sio.dump(models["good"], artifact)
    write(registry / "train.csv", train.to_csv(index=False))
    bump("cancer", artifact, "--data", "train.csv", *CARD)
    holdout_csv(registry, holdout)
    assert manifest(registry, "cancer")["artifact"]["format"] == "skops"

    code, report, err = validate("cancer@0.1.0", "--data", "holdout.csv", "--target", "target")

    assert code == 0, err
    assert report is not None and report["passed"] is True
    assert report["model_class"] == "Pipeline"
    assert rules_by_id(report)["artifact-format"]["passed"] is True


def test_a_model_slower_than_the_timeout_is_stopped(registry: Path, data: dict[str, Any],
                                                    models: dict[str, Any]) -> None:
    train, holdout = data["cancer"]
    register(registry, "forest", models["slow"], train)
    holdout_csv(registry, holdout)

    result = run("validate", "forest@0.1.0", "--latency-runs", "5000", "--timeout", "0.5",
                 "--data", "holdout.csv", "--target", "target")

    assert result.code == 1
    assert "time limit" in result.err and "0.5 s" in result.err
    assert "--timeout" in result.err  # the hint
