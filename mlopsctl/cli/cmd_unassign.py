"""``mlopsctl unassign``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("unassign")
@click.argument("model")
@click.option("--env", required=True, metavar="ENV", help="The environment to take it out of.")
@click.option("--version", "version", metavar="X.Y.Z",
              help="The version to unassign (default: the one ENV serves).")
@click.option("--all", "everything", is_flag=True,
              help="Unassign every version still assigned to ENV, leaving it empty.")
@click.option("-m", "--message", default="", help="Why (kept in the event's tag).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(model: str, env: str, version: str | None, everything: bool, message: str,
            as_json: bool) -> None:
    """Take a version out of an environment: the GTO tag MODEL#ENV!#N, then the deploy targets
    follow (as `mlopsctl sync` makes them).

    As in GTO, an older version whose assignment to ENV is still active serves ENV again;
    `--all` unassigns those too. Needs the `unassign` (or `unassign:ENV`) permission.

    \b
    Example:
      mlopsctl unassign churn --env production -m "bad predictions since 09:00"
      mlopsctl unassign churn --env staging --all
    """
    from mlopsctl.lifecycle import unassign
    from mlopsctl.project import Project

    result = unassign(Project.open(), model, env, version, everything, message,
                      console.ProgressReporter())
    if as_json:
        console.emit_json(result.to_json())
        return
    if not result.tags:
        console.note(f"nothing of {model} is assigned to {env}; nothing to do")
        return
    gone = ", ".join(result.unassigned)
    console.note(f"unassigned {model} {gone} from {env} (events {', '.join(result.tags)})")
    if result.live:
        console.note(f"{env} now serves {model} {result.live} (its earlier assignment is still "
                     f"active); to leave {env} empty: mlopsctl unassign {model} --env {env} --all")
    else:
        console.note(f"{env} serves no version of {model} now")
    for action in result.actions:
        console.note(f"  {action}")
