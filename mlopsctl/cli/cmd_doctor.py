"""``mlopsctl doctor``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def command(as_json: bool) -> None:
    """Check the repository's health.

    Git identity, no merge or rebase in progress, DVC configured, artifact remote reachable,
    encryption key present, policy pin intact, every registry tag parses, tags pushed.
    Exits 1 when any check fails (warnings do not fail).

    \b
    Example:
      mlopsctl doctor
    """
    from mlopsctl.doctor import FAIL, WARN, diagnose
    from mlopsctl.errors import CheckFailed

    findings = diagnose()
    if as_json:
        console.emit_json([f.__dict__ for f in findings])
    else:
        marks = {FAIL: "[red]FAIL[/]", WARN: "[yellow]warn[/]"}
        out = console.out()
        for f in findings:
            out.print(f"{marks.get(f.status, '[green]ok[/]  ')} {f.check}: {f.detail}")
            if f.hint and f.status != "ok":
                out.print(f"       hint: {f.hint}", markup=False)
    failed = [f.check for f in findings if f.status == FAIL]
    if failed:
        raise CheckFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}")
