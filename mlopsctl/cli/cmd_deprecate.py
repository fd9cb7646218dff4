"""``mlopsctl deprecate``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("deprecate")
@click.argument("model")
@click.option("-m", "--message", default="", help="Why (kept in the event's tag).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(model: str, message: str, as_json: bool) -> None:
    """Deprecate MODEL: the GTO tag MODEL@deprecated, so `show` (and `gto show`) hide it.

    Needs the `deprecate` permission (.mlops/access.yaml). Environments keep serving what they
    serve: take them out with `mlopsctl unassign`. A later `bump` makes the model active again.

    \b
    Example:
      mlopsctl deprecate churn -m "replaced by churn-v2"
    """
    from mlopsctl.lifecycle import deprecate
    from mlopsctl.project import Project

    result = deprecate(Project.open(), model, message)
    if as_json:
        console.emit_json(result.to_json())
        return
    if not result.tags:
        console.note(f"{model} is already deprecated; nothing to do")
    else:
        console.note(f"deprecated {model} (event {result.tags[0]})")
    for env, version in result.still_live.items():
        console.note(f"note: {env} still serves {model} {version}; to take it out: "
                     f"mlopsctl unassign {model} --env {env} --all")
