"""``mlopsctl validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlopsctl.cli import complete, console


@click.command("validate")
@click.argument("ref", metavar="MODEL@VERSION", shell_complete=complete.refs)
@click.option("--env", default="staging", show_default=True,
              help="The environment whose gates apply.")
@click.option("--data", type=click.Path(path_type=Path), metavar="PATH",
              help="Holdout set (CSV or Parquet); remembered in the model card.")
@click.option("--target", metavar="COLUMN", help="The holdout's label column.")
@click.option("--drop", multiple=True, metavar="COLUMN",
              help="A holdout column that is no feature, e.g. an ID (repeatable).")
@click.option("--no-remember", "remember", flag_value=False, default=True,
              help="Do not record --data/--target in the model card.")
@click.option("--latency-runs", default=200, show_default=True, type=click.IntRange(1, 100000),
              help="Single-row predictions timed for the latency figures.")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds the model may take to load and score before it is stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(ref: str, env: str, data: Path | None, target: str | None, drop: tuple[str, ...],
            remember: bool, latency_runs: int, timeout: float, as_json: bool) -> None:
    """Validate a version against an environment's gates, on recomputed evidence.

    Fetches the artifact (sha256 checked first), loads it in a sandboxed worker process
    (pickles and skops files may name only the exact classes and functions of the loader's
    allowlist plus the policy's trusted_types; ONNX carries no code), recomputes
    accuracy/precision/recall/F1/ROC AUC (or MAE/RMSE/R2) on the holdout, measures latency,
    scores the policy, and stores the report as a git note on the version's commit.
    Exits 0 when every gate passes, 1 when any fails. A holdout given with --data is recorded
    in a model card that has none (a commit, said on stderr; --no-remember to avoid it), so
    later validations and promotions use it.

    \b
    Example:
      mlopsctl validate churn@1.2.0 --data data/holdout.csv --target churned
      mlopsctl validate churn@latest --env production --json
      mlopsctl validate churn@1.2.0 --data data/holdout.csv --target churned --drop customer_id
    """
    from mlopsctl.errors import CheckFailed
    from mlopsctl.policy import failure_hint, failure_line
    from mlopsctl.project import Project
    from mlopsctl.validation import ValidateRequest, validate

    req = ValidateRequest(ref=ref, env=env, data=data, target=target,
                          latency_runs=latency_runs, timeout=timeout, drop=list(drop),
                          remember=remember)
    report = validate(Project.open(), req, console.ProgressReporter())
    if report.get("holdout_remembered"):
        model, holdout = report["model"], report["holdout"]
        commit = str(report["holdout_remembered"])[:8]
        console.note(f"note: recorded {holdout['path']} (target '{holdout['target']}') as the "
                     f"holdout in {model}'s model card (committed, {commit}); later validations "
                     f"and promotions use it. Undo: git revert {commit}; avoid: --no-remember")
    if as_json:
        console.emit_json(report)
    else:
        render(report)
    if report["status"] == "refused":
        raise CheckFailed(f"{report['model']}@{report['version']}: {report['error']}",
                          hint="a team's own class: list it under `trusted_types:` in "
                          ".mlops/policy.yaml, then `mlopsctl policy accept`; a model from "
                          "someone you do not trust: ask for ONNX (docs/security.md)")
    if report["status"] == "error":
        raise CheckFailed(f"{report['model']}@{report['version']} could not be scored: "
                          f"{report['error']}")
    if not report["passed"]:
        raise CheckFailed(f"{report['model']}@{report['version']} {failure_line(report)}",
                          hint=failure_hint(report))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(report: dict[str, Any]) -> None:
    out = console.out()
    title = f"{report['model']}@{report['version']} on {report['environment']}"
    if report["status"] in ("refused", "error"):
        out.print(f"[bold]{title}[/]: [red]{report['status']}[/] — {report['error']}",
                  markup=True)
        return
    t = console.table("metric", "recomputed", "reported", title=title)
    for name, m in report["metrics"].items():
        t.add_row(name, _fmt(m["recomputed"]), _fmt(m["reported"]))
    for key in ("p50_ms", "p95_ms", "max_ms", "throughput_rps"):
        t.add_row(f"latency {key}", _fmt(report["latency"][key]), "-")
    out.print(t)
    g = console.table("gate", "threshold", "value", "result")
    for gate in report["gates"]:
        bound = " ".join(x for x in (f">= {gate['min']}" if gate["min"] is not None else "",
                                     f"<= {gate['max']}" if gate["max"] is not None else "") if x)
        result = "n/a" if not gate["applicable"] else ("[green]pass[/]" if gate["passed"]
                                                       else "[red]FAIL[/]")
        g.add_row(gate["gate"], bound, _fmt(gate["value"]), result)
    out.print(g)
    comp = report["compliance"]
    r = console.table("rule", "weight", "result", "detail",
                      title=f"policy compliance {comp['score']:.1%}")
    for rule in comp["rules"]:
        verdict = ("n/a" if not rule.get("applicable", True)
                   else "[green]pass[/]" if rule["passed"] else "[red]FAIL[/]")
        r.add_row(rule["id"], _fmt(rule["weight"]), verdict, rule["detail"])
    out.print(r)
    for finding in report["findings"]:
        out.print(f"[yellow]finding:[/] {finding}")
    verdict = "[green]PASSED[/]" if report["passed"] else "[red]FAILED[/]"
    out.print(f"{title}: {verdict} (report stored as a git note on {report['commit'][:8]})")
