"""``mlopsctl sync``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("sync")
@click.argument("model", required=False)
@click.option("--env", metavar="ENV", help="Only this environment.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def command(model: str | None, env: str | None, as_json: bool) -> None:
    """Make deploy targets match the registry (idempotent).

    Loads missing or damaged slots from verified artifacts and points each environment at the
    slot the registry says is live. Repairs a promote or rollback that was interrupted between
    recording the event and flipping the pointer.

    \b
    Example:
      mlopsctl sync
      mlopsctl sync churn --env production
    """
    from mlopsctl.project import Project
    from mlopsctl.promotion import sync

    project = Project.open()
    project.require_policy_pin()
    actions = sync(project, model, env, console.ProgressReporter())
    if as_json:
        console.emit_json({"actions": actions})
    elif actions:
        for action in actions:
            console.note(action)
    else:
        console.note("targets already match the registry")
