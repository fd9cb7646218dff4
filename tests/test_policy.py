"""The policy ("constitution"): pure scoring in mlopsctl.policy, and `mlopsctl policy show /
check / accept` on real repositories."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import git, run

from mlopsctl import manifests as mf
from mlopsctl import policy as pol

# --- pure: evaluate / problems --------------------------------------------------------------------


def rule(id_: str, check: str, weight: float = 1.0, **params: Any) -> mf.Rule:
    return mf.Rule(id=id_, check=check, weight=weight, params=params)


def manifest(fmt: str = "sklearn-pickle", data: bool = True, commit: str | None = "c0ffee",
             metrics: dict[str, float] | None = None) -> mf.VersionManifest:
    return mf.VersionManifest(
        model="churn", version="1.0.0", created_at="2026-01-01T00:00:00Z",
        created_by="Ada <ada@example.com>", policy_hash="0" * 16,
        metrics=metrics or {},
        artifact=mf.ArtifactInfo(
            path="model.pkl", format=fmt, sha256="a" * 64, size=10,
            stored=mf.Stored(codec="zstd", level=3, cipher="aes-256-gcm", key_id="k1",
                             size=20, md5="b" * 32)),
        lineage=mf.Lineage(code_commit=commit,
                           data=[mf.FileHash(path="train.csv", sha256="c" * 64)] if data else []),
    )


def evidence(metrics: dict[str, float] | None = None, reported: dict[str, float] | None = None,
             latency: dict[str, float] | None = None, card: mf.ModelCard | None = None,
             verified: bool = True, **manifest_kw: Any) -> pol.Evidence:
    return pol.Evidence(
        metrics={"accuracy": 0.9, "f1": 0.85} if metrics is None else metrics,
        reported=reported or {},
        latency={"p50_ms": 1.0, "p95_ms": 3.0, "max_ms": 5.0} if latency is None else latency,
        manifest=manifest(**manifest_kw), card=card, artifact_verified=verified,
    )


def outcomes(report: pol.PolicyReport) -> dict[str, pol.RuleOutcome]:
    return {o.id: o for o in report.outcomes}


def test_compliance_is_the_weighted_share_of_rules_passed() -> None:
    policy = mf.Policy(rules=[
        rule("acc", "metric_threshold", 3, metric="accuracy", min=0.85),  # 0.9: pass
        rule("f1", "metric_threshold", 2, metric="f1", min=0.95),  # 0.85: fail
        rule("fast", "latency_budget", 1, p95_ms=10, max_ms=20),  # pass
        rule("fmt", "allowed_formats", 4, formats=["skops"]),  # sklearn-pickle: fail
    ])
    report = pol.evaluate(policy, evidence())
    got = outcomes(report)
    assert [o.id for o in report.outcomes] == ["acc", "f1", "fast", "fmt"]
    assert (got["acc"].passed, got["f1"].passed, got["fast"].passed, got["fmt"].passed) == \
        (True, False, True, False)
    assert report.compliance == pytest.approx(4 / 10)
    assert got["f1"].weight == 2 and got["f1"].check == "metric_threshold"
    assert "f1 = 0.85" in got["f1"].detail and ">= 0.95" in got["f1"].detail


def test_compliance_is_one_when_everything_passes_and_zero_when_nothing_does() -> None:
    passing = mf.Policy(rules=[rule("ok", "artifact_verified", 5),
                               rule("acc", "metric_threshold", 1, metric="accuracy", max=1.0)])
    assert pol.evaluate(passing, evidence()).compliance == 1.0
    assert pol.evaluate(passing, evidence(verified=False, metrics={})).compliance == 0.0
    assert pol.PolicyReport([]).compliance == 1.0


def test_missing_evidence_fails_the_rule() -> None:
    policy = mf.Policy(rules=[rule("auc", "metric_threshold", metric="roc_auc", min=0.5),
                              rule("lat", "latency_budget")])
    got = outcomes(pol.evaluate(policy, evidence(latency={})))
    assert not got["auc"].passed and "not computed" in got["auc"].detail
    assert not got["lat"].passed and "not measured" in got["lat"].detail


def test_metric_threshold_reads_latency_figures_and_bounds_both_ways() -> None:
    policy = mf.Policy(rules=[rule("p95", "metric_threshold", metric="p95_ms", max=2.0),
                              rule("band", "metric_threshold", metric="accuracy", min=0.8,
                                   max=0.95)])
    got = outcomes(pol.evaluate(policy, evidence()))
    assert not got["p95"].passed and "p95_ms = 3" in got["p95"].detail
    assert got["band"].passed


def test_reported_consistent_uses_its_tolerance_and_names_the_gaps() -> None:
    policy = mf.Policy(rules=[rule("honest", "reported_consistent", tolerance=0.02)])
    honest = pol.evaluate(policy, evidence(reported={"accuracy": 0.91, "f1": 0.84}))
    assert honest.compliance == 1.0
    assert "2 reported metrics within 0.02" in honest.outcomes[0].detail
    lying = pol.evaluate(policy, evidence(reported={"accuracy": 0.99, "f1": 0.86}))
    assert lying.compliance == 0.0
    assert "accuracy reported 0.99 vs recomputed 0.9" in lying.outcomes[0].detail
    assert "f1" not in lying.outcomes[0].detail
    nothing = pol.evaluate(policy, evidence(reported={"loss": 0.1}))
    assert nothing.compliance == 1.0 and "no reported metric" in nothing.outcomes[0].detail
    assert pol.reported_gaps({"accuracy": 0.99, "f1": 0.86, "x": 1.0},
                             {"accuracy": 0.9, "f1": 0.85}, 0.02) == {"accuracy": (0.99, 0.9)}


def test_card_lineage_format_and_integrity_checks() -> None:
    policy = mf.Policy(rules=[
        rule("card", "card_fields", fields=["owner", "description", "intended_use"]),
        rule("lineage", "lineage_present", require=["code_commit", "data"]),
        rule("fmt", "allowed_formats", formats=["skops", "sklearn-pickle"]),
        rule("sha", "artifact_verified"),
    ])
    full = mf.ModelCard(name="churn", owner="ada@example.com", description="d", intended_use="u")
    assert pol.evaluate(policy, evidence(card=full)).compliance == 1.0

    half = mf.ModelCard(name="churn", owner="ada@example.com")
    got = outcomes(pol.evaluate(policy, evidence(card=half, data=False, commit=None,
                                                 fmt="binary", verified=False)))
    assert not any(o.passed for o in got.values())
    assert got["card"].detail == "missing: description, intended_use"
    assert got["lineage"].detail == "missing: code_commit, data"
    assert "binary" in got["fmt"].detail
    assert got["sha"].detail == "not verified"
    no_card = outcomes(pol.evaluate(policy, evidence(card=None)))
    assert not no_card["card"].passed and "no card" in no_card["card"].detail


def test_unknown_checks_and_missing_params_fail_in_evaluate_and_are_reported_by_problems() -> None:
    policy = mf.Policy(rules=[
        rule("good", "artifact_verified", 2),
        rule("typo", "metric_treshold", 1, metric="accuracy", min=0.8),
        rule("bare", "metric_threshold", 1),  # no params.metric
        rule("cards", "card_fields", 1),  # no params.fields
    ])
    got = outcomes(pol.evaluate(policy, evidence()))
    assert got["good"].passed
    assert not got["typo"].passed and got["typo"].detail == "unknown check"
    assert not got["bare"].passed and "malformed rule" in got["bare"].detail
    assert pol.evaluate(policy, evidence()).compliance == pytest.approx(2 / 5)

    found = pol.problems(policy)
    assert len(found) == 3
    assert any("unknown check 'metric_treshold'" in p and "metric_threshold" in p for p in found)
    assert "rule 'bare': check 'metric_threshold' needs params.metric" in found
    assert "rule 'cards': check 'card_fields' needs params.fields" in found


def test_problems_reports_duplicate_ids_and_an_empty_policy() -> None:
    dup = mf.Policy(rules=[rule("a", "artifact_verified"), rule("b", "artifact_verified"),
                           rule("a", "latency_budget")])
    assert pol.problems(dup) == ["rule id 'a' is used twice"]
    assert pol.problems(mf.Policy(rules=[])) == ["the policy has no rules"]


def test_the_shipped_default_policy_is_well_formed() -> None:
    template = Path(__file__).resolve().parents[1] / "templates" / "policy.yaml"
    policy = mf.parse_yaml(template.read_bytes(), mf.Policy, "templates/policy.yaml")
    assert pol.problems(policy) == []
    assert len(policy.rules) == 8
    assert sum(r.weight for r in policy.rules) == 17


def test_a_rule_with_a_non_numeric_bound_is_malformed_not_a_crash() -> None:
    policy = mf.Policy(rules=[rule("x", "metric_threshold", metric="accuracy", min="high")])
    got = pol.evaluate(policy, evidence())
    assert not got.outcomes[0].passed and "malformed rule" in got.outcomes[0].detail


# --- CLI ------------------------------------------------------------------------------------------


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def files_in_commit(repo: Path, rev: str = "HEAD") -> set[str]:
    return set(git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", rev).split())


def pinned(repo: Path, rev: str | None = None) -> str:
    text = (git(repo, "show", f"{rev}:.mlops/config.yaml") if rev
            else (repo / ".mlops" / "config.yaml").read_text())
    return str(yaml.safe_load(text)["constitutional_hash"])


def file_hash(path: Path) -> str:
    """The governance hash of the registry whose policy.yaml is ``path``."""
    from mlopsctl.governance import hash_files

    return hash_files((path.parent / "config.yaml").read_bytes(), path.read_bytes())


def show(repo: Path) -> dict[str, Any]:
    result = run("policy", "show", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def drift(repo: Path, line: str = "# reviewed: tighten later\n") -> Path:
    """Add a rule (a change of meaning; comments alone are not governed), then ``line``."""
    policy = repo / ".mlops" / "policy.yaml"
    rule_id = "extra-" + hashlib.sha256(line.encode()).hexdigest()[:6]
    with policy.open("a") as fh:
        fh.write(f"  - {{id: {rule_id}, check: artifact_verified}}\n{line}")
    return policy


def test_show_lists_the_rules_and_an_intact_pin(registry: Path) -> None:
    doc = show(registry)
    assert doc["name"] == "default constitution"
    assert [r["id"] for r in doc["rules"]] == [
        "accuracy-floor", "f1-floor", "reported-metrics-honest", "latency-budget",
        "card-complete", "lineage-recorded", "artifact-format", "integrity-verified"]
    assert all({"id", "check", "weight", "params"} <= set(r) for r in doc["rules"])
    assert doc["pin_intact"] is True
    assert doc["pinned_hash"] == doc["actual_hash"] == pinned(registry)
    assert doc["actual_hash"] == file_hash(registry / ".mlops" / "policy.yaml")
    assert doc["acceptances"] == []

    text = run("policy", "show")
    assert text.code == 0 and "intact" in text.out and "accuracy-floor" in text.out


def test_check_passes_then_fails_after_drift(registry: Path) -> None:
    result = run("policy", "check")
    assert result.code == 0, result.err
    result = run("policy", "check", "--json")
    assert result.code == 0 and json.loads(result.out) == {"ok": True, "problems": []}

    old = pinned(registry)
    new = file_hash(drift(registry))
    result = run("policy", "check")
    assert result.code == 1
    assert "drifted" in result.err and old in result.err and new in result.err
    assert "policy accept" in result.err  # the hint
    result = run("policy", "check", "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert doc["ok"] is False and len(doc["problems"]) == 1
    assert show(registry)["pin_intact"] is False


def test_accept_repins_in_one_commit_of_its_own(registry: Path) -> None:
    before, old = head(registry), pinned(registry)
    new = file_hash(drift(registry))
    assert new != old

    result = run("policy", "accept", "-m", "comment only, reviewed by Grace")

    assert result.code == 0, result.err
    assert new in result.err
    assert git(registry, "rev-parse", "HEAD~1") == before
    assert files_in_commit(registry) == {".mlops/config.yaml", ".mlops/policy.yaml"}
    subject = git(registry, "log", "-1", "--format=%s")
    assert subject == f"mlopsctl: accept policy {new}"
    body = git(registry, "log", "-1", "--format=%b")
    assert "comment only, reviewed by Grace" in body and old in body
    assert pinned(registry, "HEAD") == pinned(registry) == new
    committed_policy = git(registry, "show", "HEAD:.mlops/policy.yaml")
    assert committed_policy.endswith("# reviewed: tighten later")
    assert git(registry, "status", "--porcelain", "--", ".mlops") == ""
    # The config is otherwise unchanged.
    old_cfg = yaml.safe_load(git(registry, "show", f"{before}:.mlops/config.yaml"))
    new_cfg = yaml.safe_load(git(registry, "show", "HEAD:.mlops/config.yaml"))
    assert {**old_cfg, "constitutional_hash": new} == new_cfg

    assert run("policy", "check").code == 0
    doc = show(registry)
    assert doc["pin_intact"] is True
    assert len(doc["acceptances"]) == 1
    acceptance = doc["acceptances"][0]
    assert acceptance["hash"] == new
    assert acceptance["commit"] == head(registry)
    assert acceptance["actor"] == "Ada Lovelace <ada@example.com>"
    assert "comment only, reviewed by Grace" in acceptance["message"]


def test_accept_of_a_policy_change_already_committed_touches_only_config(registry: Path) -> None:
    new = file_hash(drift(registry))
    git(registry, "commit", "-q", "-am", "tweak the policy")
    assert run("policy", "check").code == 1

    result = run("policy", "accept", "-m", "after review")

    assert result.code == 0, result.err
    assert files_in_commit(registry) == {".mlops/config.yaml"}
    assert pinned(registry, "HEAD") == new
    assert [a["hash"] for a in show(registry)["acceptances"]] == [new]


def test_a_second_acceptance_is_listed_too(registry: Path) -> None:
    first = file_hash(drift(registry, "# one\n"))
    assert run("policy", "accept", "-m", "first").code == 0
    second = file_hash(drift(registry, "# two\n"))
    assert run("policy", "accept", "-m", "second").code == 0
    hashes = [a["hash"] for a in show(registry)["acceptances"]]
    assert sorted(hashes) == sorted([first, second])


def test_accept_with_nothing_to_do_makes_no_commit(registry: Path) -> None:
    before = head(registry)
    result = run("policy", "accept", "-m", "nothing changed")
    assert result.code == 0, result.err
    assert "already pinned" in result.err
    assert head(registry) == before
    assert show(registry)["acceptances"] == []


def test_accept_refuses_a_malformed_policy_and_commits_nothing(registry: Path) -> None:
    policy = registry / ".mlops" / "policy.yaml"
    doc = yaml.safe_load(policy.read_text())
    doc["rules"].append({"id": "typo", "check": "metric_treshold", "weight": 1,
                         "params": {"metric": "accuracy", "min": 0.9}})
    policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    before, old = head(registry), pinned(registry)

    result = run("policy", "accept", "-m", "oops")

    assert result.code == 1
    assert "metric_treshold" in result.err and "not well-formed" in result.err
    assert head(registry) == before
    assert pinned(registry) == old
    check = run("policy", "check", "--json")
    assert check.code == 1
    problems = json.loads(check.out)["problems"]
    assert any("drifted" in p for p in problems)
    assert any("unknown check 'metric_treshold'" in p for p in problems)


def test_accept_pins_and_commits_the_reviewed_gates_too(registry: Path) -> None:
    config = registry / ".mlops" / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["environments"]["production"]["gates"]["accuracy"] = {"min": 0.9}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = head(registry)
    new = file_hash(registry / ".mlops" / "policy.yaml")
    assert new != pinned(registry)

    assert run("policy", "accept", "-m", "raise the production floor").code == 0

    old_cfg = yaml.safe_load(git(registry, "show", f"{before}:.mlops/config.yaml"))
    new_cfg = yaml.safe_load(git(registry, "show", "HEAD:.mlops/config.yaml"))
    assert new_cfg["constitutional_hash"] == new
    assert new_cfg["environments"]["production"]["gates"]["accuracy"] == {"min": 0.9}
    assert old_cfg["environments"]["production"]["gates"]["accuracy"] == {"min": 0.85}
    assert git(registry, "status", "--porcelain", "--", ".mlops") == ""
