"""Defaults that judge fairly (issue 9): a tolerance that fits each metric's scale, under-reporting
as a note, a policy forecast before validation, and gate failures that name what failed."""

from __future__ import annotations

from typing import Any

import pytest

from mlopsctl import manifests as mf
from mlopsctl import policy as pol


def rule(id_: str, check: str, weight: float = 1.0, **params: Any) -> mf.Rule:
    return mf.Rule(id=id_, check=check, weight=weight, params=params)


def manifest(data: bool = True) -> mf.VersionManifest:
    return mf.VersionManifest(
        model="churn", version="1.0.0", created_at="2026-01-01T00:00:00Z",
        created_by="Ada <ada@example.com>", policy_hash="0" * 16,
        artifact=mf.ArtifactInfo(
            path="model.pkl", format="sklearn-pickle", sha256="a" * 64, size=10,
            stored=mf.Stored(codec="zstd", level=3, cipher="aes-256-gcm", key_id="k1",
                             size=20, md5="b" * 32)),
        lineage=mf.Lineage(code_commit="c0ffee",
                           data=[mf.FileHash(path="train.csv", sha256="c" * 64)] if data else []),
    )


def evidence(metrics: dict[str, float] | None = None,
             reported: dict[str, float] | None = None) -> pol.Evidence:
    return pol.Evidence(
        metrics={"accuracy": 0.9, "f1": 0.85} if metrics is None else metrics,
        reported=reported or {}, latency={"p50_ms": 1.0, "p95_ms": 3.0, "max_ms": 5.0},
        manifest=manifest(), card=None, artifact_verified=True,
    )


def test_an_mae_rounded_to_one_decimal_is_honest() -> None:
    """An MAE of 49.87 reported as 49.9 used to fail an absolute tolerance of 0.02."""
    policy = mf.Policy(rules=[rule("honest", "reported_consistent", tolerance=0.02)])
    report = pol.evaluate(policy, evidence(metrics={"mae": 49.87, "rmse": 61.2},
                                           reported={"mae": 49.9, "rmse": 61.0}))
    assert report.compliance == 1.0, report.outcomes[0].detail


def test_an_overstated_mae_beyond_one_percent_is_dishonest() -> None:
    policy = mf.Policy(rules=[rule("honest", "reported_consistent", tolerance=0.02)])
    report = pol.evaluate(policy, evidence(metrics={"mae": 49.87}, reported={"mae": 45.0}))
    assert report.compliance == 0.0
    assert "mae reported 45 vs recomputed 49.87" in report.outcomes[0].detail
    assert pol.reported_gaps({"mae": 49.3}, {"mae": 49.87}) == {"mae": (49.3, 49.87)}
    assert pol.reported_gaps({"mae": 49.5}, {"mae": 49.87}) == {}  # 0.74 % off


def test_relative_tolerance_is_a_rule_parameter() -> None:
    policy = mf.Policy(rules=[rule("honest", "reported_consistent", relative_tolerance=0.2)])
    report = pol.evaluate(policy, evidence(metrics={"mae": 49.87}, reported={"mae": 45.0}))
    assert report.compliance == 1.0


def test_under_reporting_is_a_note_not_dishonesty() -> None:
    policy = mf.Policy(rules=[rule("honest", "reported_consistent", tolerance=0.02)])
    modest = pol.evaluate(policy, evidence(reported={"accuracy": 0.80, "f1": 0.85},
                                           metrics={"accuracy": 0.9, "f1": 0.85}))
    assert modest.compliance == 1.0
    assert "note: accuracy reported 0.8, worse than recomputed 0.9" in modest.outcomes[0].detail
    worse_mae = pol.evaluate(policy, evidence(metrics={"mae": 49.87}, reported={"mae": 60.0}))
    assert worse_mae.compliance == 1.0
    assert "note: mae reported 60" in worse_mae.outcomes[0].detail
    assert pol.under_reported({"mae": 60.0}, {"mae": 49.87}) == {"mae": (60.0, 49.87)}
    assert pol.reported_gaps({"mae": 60.0}, {"mae": 49.87}) == {}


def test_bounded_metrics_keep_an_absolute_tolerance_and_the_boundary_is_inside() -> None:
    policy = mf.Policy(rules=[rule("honest", "reported_consistent", tolerance=0.02)])
    edge = pol.evaluate(policy, evidence(metrics={"accuracy": 0.84}, reported={"accuracy": 0.86}))
    assert edge.compliance == 1.0, edge.outcomes[0].detail  # 0.86 - 0.84 > 0.02 in floats
    over = pol.evaluate(policy, evidence(metrics={"accuracy": 0.84}, reported={"accuracy": 0.87}))
    assert over.compliance == 0.0
    assert pol.metric_tolerance("roc_auc", 0.5) == 0.02
    assert pol.metric_tolerance("rmse", 200.0) == pytest.approx(2.0)


def test_forecast_judges_static_rules_and_bounds_the_best_compliance() -> None:
    policy = mf.Policy(rules=[
        rule("acc", "metric_threshold", 3, metric="accuracy", min=0.85),  # pending
        rule("card", "card_fields", 1, fields=["owner", "intended_use"]),
        rule("lineage", "lineage_present", 2, require=["code_commit", "data"]),
        rule("fmt", "allowed_formats", 1, formats=["sklearn-pickle"]),
    ])
    card = mf.ModelCard(name="churn", owner="ada@example.com")
    fc = pol.forecast(policy, manifest(data=False), card)
    assert [o.id for o in fc.failed] == ["card", "lineage"]
    assert "missing: intended_use" in fc.failed[0].detail
    assert "missing: data" in fc.failed[1].detail
    assert [r.id for r in fc.pending] == ["acc"]
    assert fc.best_compliance == pytest.approx(4 / 7)
    full = mf.ModelCard(name="churn", owner="ada", intended_use="tests")
    assert pol.forecast(policy, manifest(), full).best_compliance == 1.0


# --- a failed gate names what failed ------------------------------------------------------------


def report(gates: list[dict[str, Any]], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "churn", "environment": "staging", "status": "failed", "gates": gates,
            "compliance": {"rules": rules}}


def test_failure_line_names_the_gate_its_value_its_bound_and_the_failed_rules() -> None:
    rules = [{"id": "reported-metrics-honest", "check": "reported_consistent", "passed": False},
             {"id": "accuracy-floor", "check": "metric_threshold", "passed": True},
             {"id": "r2-floor", "check": "metric_threshold", "passed": True,
              "applicable": False},
             {"id": "card-complete", "check": "card_fields", "passed": False},
             {"id": "lineage-recorded", "check": "lineage_present", "passed": False}]
    gates = [{"gate": "accuracy", "min": 0.85, "max": None, "value": 0.9, "passed": True},
             {"gate": "compliance", "min": 0.95, "max": None, "value": 0.647, "passed": False}]
    line = pol.failure_line(report(gates, rules))
    assert line == ("failed staging gates: compliance 64.7 % < 95 % "
                    "(reported-metrics-honest, card-complete, lineage-recorded)")
    hint = pol.failure_hint(report(gates, rules)) or ""
    assert "mlopsctl card churn" in hint and "mlopsctl bump churn --data PATH" in hint


def test_failure_line_names_metric_and_latency_gates() -> None:
    gates = [{"gate": "accuracy", "min": 0.85, "max": None, "value": 0.8123, "passed": False},
             {"gate": "latency_p95_ms", "min": None, "max": 1500, "value": 1800.5,
              "passed": False},
             {"gate": "roc_auc", "min": 0.9, "max": None, "value": None, "passed": True}]
    assert pol.failure_line(report(gates, [])) == (
        "failed staging gates: accuracy 0.8123 < 0.85; latency_p95_ms 1800 > 1500")
