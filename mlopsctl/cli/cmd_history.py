"""``mlopsctl history``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("history")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (the same fields as `gto history --json`), newest first.")
def command(model: str | None, as_json: bool) -> None:
    """Show the registry's events: registrations, stage assignments, deprecations.

    \b
    Example:
      mlopsctl history
      mlopsctl history churn --json
    """
    from mlopsctl import registry as reg
    from mlopsctl import views
    from mlopsctl.errors import UsageError
    from mlopsctl.gitops.tags import check_name
    from mlopsctl.workspace import Workspace

    if model is not None:
        check_name(model)
    ws = Workspace.find()
    registry = reg.load(ws.root)
    console.warn_policy_drift(ws)
    if model is not None and registry.model(model) is None:
        raise UsageError(f"unknown model '{model}'", hint="mlopsctl show")
    docs = views.history(registry, model)
    if as_json:
        console.emit_json(docs)
        return
    if not docs:
        console.note("No events yet.")
        return
    t = console.table("when", "model", "event", "version", "stage", "who", "message")
    for d in reversed(docs):  # oldest first reads like a log
        t.add_row(d["timestamp"][:16].replace("T", " "), d["artifact"], d["event"],
                  d["version"] or "-", d["stage"] or "-", d["author"],
                  d["message"].split("\n", 1)[0])
    for col in t.columns[:5]:
        col.no_wrap = True
    console.out().print(t)
