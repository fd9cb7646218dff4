"""``mlopsctl rollback``."""

from __future__ import annotations

import click

from mlopsctl.cli import complete, console


@click.command("rollback")
@click.argument("model", shell_complete=complete.models)
@click.option("--env", required=True, metavar="ENV", help="The environment to roll back.")
@click.option("--to", "to", metavar="VERSION",
              help="An earlier version that was live there (default: the previous one, still "
              "warm in the other slot).")
@click.option("-m", "--message", default="", help="Why (kept in the event's tag).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(model: str, env: str, to: str | None, message: str, as_json: bool) -> None:
    """Go back to the previous version of MODEL in ENV: an instant flip to the other slot.

    Recorded as a stage tag marked `rollback` in its message.

    \b
    Example:
      mlopsctl rollback churn --env production -m "p95 latency regression"
      mlopsctl rollback churn --env production --to 1.1.0
    """
    from mlopsctl.project import Project
    from mlopsctl.promotion import rollback

    result = rollback(Project.open(), model, env, to, message, console.ProgressReporter())
    if as_json:
        console.emit_json(result.to_json())
    elif result.tag is None:
        console.note(f"{model} {result.version} is already live in {env}; nothing to do")
    else:
        console.note(f"rolled back {model} in {env}: {result.previous} -> {result.version} "
                     f"(slot {result.slot}, event {result.tag})")
