"""``mlopsctl verify``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("verify")
@click.argument("target", required=False, metavar="[MODEL[@VERSION]]")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(target: str | None, as_json: bool) -> None:
    """Re-check stored artifacts in the remote end to end.

    Every version's blob is read, authenticated, decompressed and hashed against its manifest.
    Exits 1 and names every version that fails.

    \b
    Example:
      mlopsctl verify
      mlopsctl verify churn
      mlopsctl verify churn@1.2.0 --json
    """
    from mlopsctl.artifacts import verify
    from mlopsctl.errors import CheckFailed
    from mlopsctl.project import Project

    project = Project.open()
    console.warn_policy_drift(project.ws)
    checks = verify(project, target, console.ProgressReporter())
    failed = [c for c in checks if not c.ok]
    if as_json:
        console.emit_json({
            "ok": not failed,
            "versions": [{"model": c.model, "version": c.version, "ok": c.ok,
                          "skipped": c.skipped, "problem": c.problem or None} for c in checks],
        })
    else:
        for c in checks:
            mark = "skip" if c.skipped else ("ok  " if c.ok else "FAIL")
            print(f"{mark} {c.model}@{c.version}" + (f"  {c.problem}" if c.problem else ""))
    if failed:
        names = ", ".join(f"{c.model}@{c.version}" for c in failed)
        raise CheckFailed(f"{len(failed)} of {len(checks)} versions failed verification: {names}")
    if not as_json:
        console.note(f"{len(checks)} versions verified")
