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


# Scale-free metrics: a gap of 0.02 means the same for every model, so the tolerance is
# absolute. Everything else (MAE, RMSE, latency) is in the model's own units, where only a
# relative tolerance is fair: 0.03 off an MAE of 49.87 is rounding, not dishonesty.
SCALE_FREE = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"})
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse", "log_loss"})
DEFAULT_TOLERANCE = 0.02  # absolute, for scale-free metrics
DEFAULT_RELATIVE_TOLERANCE = 0.01  # of the recomputed value, for the others
_EPSILON = 1e-9  # 0.86 - 0.84 is 0.0200000001 in floating point


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER and not metric.endswith("_ms")


def metric_tolerance(metric: str, recomputed: float, tolerance: float = DEFAULT_TOLERANCE,
                     relative: float = DEFAULT_RELATIVE_TOLERANCE) -> float:
    """How far a reported value may stray from the recomputed one."""
    if metric in SCALE_FREE:
        return tolerance
    return relative * abs(recomputed)


def _gap(metric: str, reported: float, recomputed: float, tolerance: float,
         relative: float) -> float:
    """How much better than recomputed the report claims (> 0), or worse (< 0), beyond the
    tolerance; 0 within it."""
    allowed = metric_tolerance(metric, recomputed, tolerance, relative) + _EPSILON
    claimed = reported - recomputed if higher_is_better(metric) else recomputed - reported
    return claimed if abs(claimed) > allowed else 0.0


def reported_gaps(reported: Mapping[str, float], metrics: Mapping[str, float],
                  tolerance: float = DEFAULT_TOLERANCE,
                  relative: float = DEFAULT_RELATIVE_TOLERANCE) -> dict[str, tuple[float, float]]:
    """Reported metrics that claim better than the recomputed ones, beyond the tolerance that
    fits each metric: (reported, recomputed) by name."""
    return {k: (v, metrics[k]) for k, v in reported.items()
            if k in metrics and _gap(k, v, metrics[k], tolerance, relative) > 0}


def under_reported(reported: Mapping[str, float], metrics: Mapping[str, float],
                   tolerance: float = DEFAULT_TOLERANCE,
                   relative: float = DEFAULT_RELATIVE_TOLERANCE) -> dict[str, tuple[float, float]]:
    """Reported metrics worse than the recomputed ones (modesty, or a different split): a note,
    not dishonesty."""
    return {k: (v, metrics[k]) for k, v in reported.items()
            if k in metrics and _gap(k, v, metrics[k], tolerance, relative) < 0}


def tolerances(params: Mapping[str, Any]) -> tuple[float, float]:
    """(absolute, relative) tolerance from a ``reported_consistent`` rule's params."""
    return (float(params.get("tolerance", DEFAULT_TOLERANCE)),
            float(params.get("relative_tolerance", DEFAULT_RELATIVE_TOLERANCE)))


def _reported_consistent(p: Mapping[str, Any], ev: Evidence) -> tuple[bool, str]:
    tol, rel = tolerances(p)
    comparable = [k for k in ev.reported if k in ev.metrics]
    if not comparable:
        return True, "no reported metric to compare"
    gaps = reported_gaps(ev.reported, ev.metrics, tol, rel)
    modest = under_reported(ev.reported, ev.metrics, tol, rel)
    note = ("; note: " + ", ".join(f"{k} reported {a:.4g}, worse than recomputed {b:.4g}"
                                   for k, (a, b) in modest.items())) if modest else ""
    if gaps:
        return False, ", ".join(f"{k} reported {a:.4g} vs recomputed {b:.4g}"
                                for k, (a, b) in gaps.items()) + note
    return True, (f"{len(comparable)} reported metrics within {tol} (scale-free) or "
                  f"{rel:.0%} (in the model's units){note}")


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


# --- forecasting, before any validation --------------------------------------------------------

# Checks that need nothing but the manifest and the card, so they can be judged at `bump` time.
STATIC_CHECKS = frozenset({"card_fields", "lineage_present", "allowed_formats"})


@dataclass(frozen=True)
class Forecast:
    """The policy as things stand before validation: static rules judged, the rest pending."""

    judged: list[RuleOutcome] = field(default_factory=list)
    pending: list[mf.Rule] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleOutcome]:
        return [o for o in self.judged if not o.passed]

    @property
    def best_compliance(self) -> float:
        """The highest compliance validation could still reach: every pending rule passing
        (a pending rule that turns out not to apply only lowers the best case)."""
        pending = sum(r.weight for r in self.pending)
        total = sum(o.weight for o in self.judged) + pending
        if total == 0:
            return 1.0
        return (sum(o.weight for o in self.judged if o.passed) + pending) / total


def forecast(policy: mf.Policy, manifest: mf.VersionManifest,
             card: mf.ModelCard | None) -> Forecast:
    evidence = Evidence(metrics={}, reported=manifest.metrics, latency={}, manifest=manifest,
                        card=card, artifact_verified=False)
    static = mf.Policy(rules=[r for r in policy.rules if r.check in STATIC_CHECKS])
    pending = [r for r in policy.rules if r.check not in STATIC_CHECKS]
    return Forecast(evaluate(static, evidence).outcomes, pending)


# --- saying what failed --------------------------------------------------------------------------


def _number(value: float, percent: bool) -> str:
    return f"{value * 100:.3g} %" if percent else f"{value:.4g}"


def failure_line(report: Mapping[str, Any]) -> str:
    """One line naming every failed gate of a validation report, with its value and bound, and
    for compliance the rules that failed: ``failed staging gates: compliance 64.7 % < 95 %
    (reported-metrics-honest, card-complete, lineage-recorded)``."""
    env = report.get("environment", "?")
    if report.get("status") in ("refused", "error"):
        return f"could not be scored for {env}: {report.get('error')}"
    parts = []
    for gate in report.get("gates", []):
        if gate.get("passed", True) or gate.get("value") is None:
            continue
        name, value = gate["gate"], float(gate["value"])
        percent = name == "compliance"
        if gate.get("min") is not None and value < gate["min"]:
            text = f"{name} {_number(value, percent)} < {_number(gate['min'], percent)}"
        else:
            text = f"{name} {_number(value, percent)} > {_number(gate['max'], percent)}"
        if percent:
            rules = [r["id"] for r in report.get("compliance", {}).get("rules", [])
                     if r.get("applicable", True) and not r.get("passed")]
            text += f" ({', '.join(rules)})" if rules else ""
        parts.append(text)
    return f"failed {env} gates: " + ("; ".join(parts) or "unknown")


def failure_hint(report: Mapping[str, Any]) -> str | None:
    """What fixes the failed rules that a new validation cannot fix by itself."""
    model = report.get("model", "MODEL")
    failed = {r["check"] for r in report.get("compliance", {}).get("rules", [])
              if r.get("applicable", True) and not r.get("passed")}
    hints = []
    if "card_fields" in failed:
        hints.append(f"complete the card: mlopsctl card {model} --description TEXT "
                     "--intended-use TEXT")
    if "lineage_present" in failed:
        hints.append(f"lineage is immutable: register a new version with its data "
                     f"(mlopsctl bump {model} --data PATH)")
    return "; ".join(hints) or None
