"""``mlopsctl monitor``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mlopsctl.cli import console

LEVELS = ("warning", "critical", "emergency")


@click.command("monitor")
@click.option("--once", is_flag=True, help="Print the dashboard once and exit (no app).")
@click.option("--watch", is_flag=True,
              help="Write one JSON line each time the dashboard changes (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="With --once: print JSON.")
@click.option("--fail-on", "fail_on", type=click.Choice(LEVELS), default="critical",
              show_default=True, help="With --once: exit 1 when an alert at or above LEVEL "
              "is active.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="Seconds between checks for changes.")
@click.option("--scrape-every", type=click.FloatRange(0.1, 3600), default=5.0,
              show_default=True, help="Seconds between scrapes of the metrics endpoints.")
@click.option("--no-scrape", is_flag=True, help="Do not read the live metrics endpoints.")
def command(once: bool, watch: bool, as_json: bool, fail_on: str, interval: float,
            scrape_every: float, no_scrape: bool) -> None:
    """The live monitor: models, what is live where (blue/green), validation, compliance,
    health, live metrics from each environment's Prometheus endpoint (`metrics_url` in
    .mlops/config.yaml), alerts against the validated baseline and the performance targets,
    and the audit log. Keys in the app: `/` filter, Enter open a model, `p` promote, `b` roll
    back, `?` help, `q` quit.

    `--once --json` prints the same document and exits 1 when an alert at or above
    `--fail-on` is active (for cron and CI).

    \b
    Example:
      mlopsctl monitor
      mlopsctl monitor --once --json --fail-on warning
      mlopsctl monitor --watch | jq -c .summary
    """
    from mlopsctl import monitoring
    from mlopsctl.errors import CheckFailed, UsageError
    from mlopsctl.project import Project

    if once and watch:
        raise UsageError("--once and --watch do not go together",
                         hint="mlopsctl monitor --once --json  (or --watch)")
    project = Project.open()
    if watch:
        monitor = monitoring.Monitor(project)
        for doc in monitoring.watch(monitor, interval, scrape_every,
                                    auto_rollback=not no_scrape):
            sys.stdout.write(json.dumps(doc, default=str) + "\n")
            sys.stdout.flush()
        return
    if not once:
        from mlopsctl.tui.app import MonitorApp

        MonitorApp(project.root, interval=interval, scrape_every=scrape_every,
                   scrape=not no_scrape).run()
        return
    doc = monitoring.dashboard(project, scrape=not no_scrape)
    if as_json:
        console.emit_json(doc)
    else:
        _render(doc)
    active = [a for a in doc["alerts"] if monitoring.rank(a["level"]) >= monitoring.rank(fail_on)]
    if active:
        raise CheckFailed(f"{len(active)} alert(s) at or above {fail_on}: {active[0]['message']}",
                          hint="mlopsctl monitor  (or --once --json for every alert)")


def _render(doc: dict[str, Any]) -> None:
    from mlopsctl.monitoring import age

    envs = list(doc["environments"])
    t = console.table("model", "latest", *envs, "last event", "compliance", "validation",
                      "health", "alerts")
    for row in doc["models"]:
        live = row["environments"]
        cells = [(f"{live[e]['live']} {live[e]['slot']}" if e in live and live[e]["live"]
                  else "-") for e in envs]
        last = row["last_event"]
        bad = [f"{e}: {st}" for e, st in row["validation"].items() if st != "passed"]
        validation = ", ".join(bad) if bad else ("passed" if row["validation"] else "-")
        t.add_row(row["model"], row["latest"] or "-", *cells,
                  f"{last['event']} {age(last['age_s'])} ago" if last else "-",
                  f"{row['compliance']:.0%}" if row["compliance"] is not None else "-",
                  validation, row["health"],
                  ", ".join(f"{n} {lvl}" for lvl, n in row["alerts"].items()) or "-")
    out = console.out()
    out.print(t)
    for alert in doc["alerts"]:
        out.print(f"{alert['level']}: {alert['message']}")
