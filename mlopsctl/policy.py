"""The constitution: weighted rules scored against the evidence of one validation (pure).

compliance = sum(weight of rules passed) / sum(weights of applicable rules). A metric rule
for the other kind of task (accuracy for a regressor, R² for a classifier) does not apply; a rule
whose evidence is missing for this task (ROC AUC for a classifier without probabilities) fails:
the policy asked for it and it is not there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlopsctl import manifests as mf


@dataclass(frozen=True)
class Evidence:
    """Everything a rule may look at."""

    metrics: Mapping[str, float]  # recomputed
    reported: Mapping[str, float]  # from bump --metrics
    latency: Mapping[str, float]  # p50_ms, p95_ms, max_ms, throughput_rps
    manifest: mf.VersionManifest
    card: mf.ModelCard | None
    artifact_verified: bool
    findings: tuple[str, ...] = ()
    task: str = ""  # classification / regression, when known


TASK_METRICS = {
    "classification": {"accuracy", "precision", "recall", "f1", "roc_auc"},
    "regression": {"mae", "rmse", "r2"},
}


class NotApplicable(Exception):
    """The rule does not apply to this model (e.g. accuracy for a regressor)."""


@dataclass(frozen=True)
class RuleOutcome:
    id: str
    check: str
    weight: float
    passed: bool
    detail: str
    applicable: bool = True


@dataclass(frozen=True)
class PolicyReport:
    outcomes: list[RuleOutcome] = field(default_factory=list)

    @property
    def compliance(self) -> float:
        counted = [o for o in self.outcomes if o.applicable]
        total = sum(o.weight for o in counted)
        if total == 0:
            return 1.0
        return sum(o.weight for o in counted if o.passed) / total


Check = Callable[[Mapping[str, Any], Evidence], tuple[bool, str]]


def _metric_threshold(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    name = p["metric"]
    value = ev.metrics.get(name, ev.latency.get(name))
    other_tasks = [t for t in TASK_METRICS if t != ev.task] if ev.task else []
    if value is None and any(name in TASK_METRICS[t] for t in other_tasks):
        raise NotApplicable(f"{name} does not apply to a {ev.task} model")
    if value is None:
        return False, f"{name} was not computed for this model"
    lo, hi = p.get("min"), p.get("max")
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    bound = " and ".join(x for x in (f">= {lo}" if lo is not None else "",
                                      f"<= {hi}" if hi is not None else "") if x)
    return ok, f"{name} = {value:.4g} (needs {bound})"


def reported_gaps(reported: Mapping[str, float], metrics: Mapping[str, float],
                  tolerance: float) -> dict[str, tuple[float, float]]:
    """Reported metrics that differ from the recomputed ones by more than ``tolerance``."""
    return {k: (v, metrics[k]) for k, v in reported.items()
            if k in metrics and abs(v - metrics[k]) > tolerance}


def _reported_consistent(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    tol = float(p.get("tolerance", 0.02))
    comparable = [k for k in ev.reported if k in ev.metrics]
    if not comparable:
        return True, "no reported metric to compare"
    gaps = reported_gaps(ev.reported, ev.metrics, tol)
    if gaps:
        return False, ", ".join(f"{k} reported {a:.4g} vs recomputed {b:.4g}"
                                for k, (a, b) in gaps.items())
    return True, f"{len(comparable)} reported metrics within {tol}"


def _latency_budget(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    p95, mx = ev.latency.get("p95_ms"), ev.latency.get("max_ms")
    if p95 is None or mx is None:
        return False, "latency was not measured"
    ok = p95 <= float(p.get("p95_ms", 1500)) and mx <= float(p.get("max_ms", 2000))
    return ok, f"p95 {p95:.2f} ms, max {mx:.2f} ms (budget {p.get('p95_ms')}/{p.get('max_ms')})"


def _card_fields(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    if ev.card is None:
        return False, "the model has no card (.mlops/models/<name>/model.yaml)"
    missing = [f for f in p.get("fields", []) if not getattr(ev.card, f, None)]
    return not missing, ("missing: " + ", ".join(missing)) if missing else "complete"


def _lineage_present(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    lineage = ev.manifest.lineage
    missing = [f for f in p.get("require", []) if not getattr(lineage, f, None)]
    return not missing, ("missing: " + ", ".join(missing)) if missing else "recorded"


def _allowed_formats(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    fmt = ev.manifest.artifact.format
    allowed = list(p.get("formats", []))
    return fmt in allowed, f"format {fmt}" + ("" if fmt in allowed else f" not in {allowed}")


def _artifact_verified(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    return ev.artifact_verified, "sha256 matches" if ev.artifact_verified else "not verified"


CHECKS: dict[str, tuple[Check, tuple[str, ...]]] = {
    # check name -> (function, required params)
    "metric_threshold": (_metric_threshold, ("metric",)),
    "reported_consistent": (_reported_consistent, ()),
    "latency_budget": (_latency_budget, ()),
    "card_fields": (_card_fields, ("fields",)),
    "lineage_present": (_lineage_present, ("require",)),
    "allowed_formats": (_allowed_formats, ("formats",)),
    "artifact_verified": (_artifact_verified, ()),
}


def problems(policy: mf.Policy) -> list[str]:
    """Why the policy is not well-formed (empty when it is)."""
    out = []
    seen: set[str] = set()
    if not policy.rules:
        out.append("the policy has no rules")
    for rule in policy.rules:
        if rule.id in seen:
            out.append(f"rule id '{rule.id}' is used twice")
        seen.add(rule.id)
        if rule.check not in CHECKS:
            out.append(f"rule '{rule.id}': unknown check '{rule.check}' "
                       f"(known: {', '.join(sorted(CHECKS))})")
            continue
        for param in CHECKS[rule.check][1]:
            if param not in rule.params:
                out.append(f"rule '{rule.id}': check '{rule.check}' needs params.{param}")
    return out


def evaluate(policy: mf.Policy, evidence: Evidence) -> PolicyReport:
    outcomes = []
    for rule in policy.rules:
        check = CHECKS.get(rule.check)
        if check is None:
            outcomes.append(RuleOutcome(rule.id, rule.check, rule.weight, False, "unknown check"))
            continue
        try:
            passed, detail = check[0](rule.params, evidence)
        except NotApplicable as exc:
            outcomes.append(RuleOutcome(rule.id, rule.check, rule.weight, True, str(exc),
                                        applicable=False))
            continue
        except (KeyError, TypeError, ValueError) as exc:
            passed, detail = False, f"malformed rule: {exc}"
        outcomes.append(RuleOutcome(rule.id, rule.check, rule.weight, passed, detail))
    return PolicyReport(outcomes)
