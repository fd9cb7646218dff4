"""``mlopsctl status``."""

from __future__ import annotations

import click

from mlopsctl.cli import complete, console


@click.command("status")
@click.argument("model", required=False, shell_complete=complete.models)
@click.option("--env", metavar="ENV", help="Only this environment.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(model: str | None, env: str | None, as_json: bool) -> None:
    """What is live where: per environment the live version, both slots, when and by whom it
    went live, its validation summary, and whether the target matches the registry.

    Exits 1 when a target is out of sync or unhealthy (`mlopsctl sync` repairs it). The local
    target is per machine: in a clone where nothing was ever deployed, an environment shows
    "not deployed here" (exit 0; `mlopsctl sync` deploys it here).

    \b
    Example:
      mlopsctl status
      mlopsctl status churn --env production --json
    """
    from mlopsctl.project import Project
    from mlopsctl.promotion import status

    rows = status(Project.open(), model, env)
    if as_json:
        console.emit_json(rows)
    elif not rows:
        console.note("Nothing is deployed yet. Release a version with: mlopsctl promote MODEL "
                     "VERSION --to staging")
    else:
        t = console.table("model", "env", "live", "blue", "green", "since", "by", "validation",
                          "target")
        for r in rows:
            v = r["validation"] or {}
            val = f"compliance {v['compliance']:.0%}" if v.get("compliance") is not None else "-"
            live = (r["live"] or "-") + (" (rollback)" if r["rollback"] else "")
            state = ("not deployed here" if not r["deployed_here"] else
                     "in sync" if r["in_sync"] and r["healthy"] else "[red]OUT OF SYNC[/]")
            t.add_row(r["model"], r["environment"], live,
                      *(_slot(r, s) for s in ("blue", "green")),
                      (r["since"] or "-")[:16].replace("T", " "),
                      (r["by"] or "-").split(" <")[0], val,
                      f"{r['target']}: {state}")
        console.out().print(t)
    bad = [f"{r['model']} {r['environment']}" for r in rows
           if r["deployed_here"] and not (r["in_sync"] and r["healthy"])]
    absent = [r for r in rows if not r["deployed_here"]]
    if absent and not as_json:
        console.note(f"{len(absent)} deployment(s) not on this machine: `mlopsctl sync` "
                     "deploys them here")
    if bad:
        raise out_of_sync(bad, as_json)


def out_of_sync(bad: list[str], as_json: bool = False, first: int = 5) -> Exception:
    """The error for out-of-sync targets: a count and the first few, not every one of them
    (the table or the JSON lists them all)."""
    from mlopsctl.errors import CheckFailed

    shown = ", ".join(bad[:first]) + (f" and {len(bad) - first} more" if len(bad) > first else "")
    where = "the JSON above" if as_json else "the table above"
    return CheckFailed(f"{len(bad)} target(s) out of sync: {shown}",
                       hint=f"mlopsctl sync ({where} lists every target)")


def _slot(row: dict[str, object], slot: str) -> str:
    version = row["slots"][slot] or "-"  # type: ignore[index]
    return f"{version} *" if row["live_slot"] == slot else str(version)
