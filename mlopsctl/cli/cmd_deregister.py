"""``mlopsctl deregister``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("deregister")
@click.argument("ref", metavar="MODEL@VERSION")
@click.option("-m", "--message", default="", help="Why (kept in the event's tag).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(ref: str, message: str, as_json: bool) -> None:
    """Withdraw one version: the GTO tag MODEL@vX.Y.Z!#N. `latest` falls back to the greatest
    version still registered; the manifest and the stored blob stay (history is immutable).

    Needs the `deregister` permission (.mlops/access.yaml). A version an environment serves is
    refused: unassign it first.

    \b
    Example:
      mlopsctl deregister churn@1.3.0 -m "trained on leaked labels"
    """
    from mlopsctl.errors import UsageError
    from mlopsctl.lifecycle import deregister
    from mlopsctl.project import Project

    model, sep, version = ref.partition("@")
    if not sep or not version:
        raise UsageError(f"'{ref}' names no version", hint="write MODEL@VERSION, e.g. churn@1.3.0")
    result = deregister(Project.open(), model, version, message)
    if as_json:
        console.emit_json(result.to_json())
    elif not result.tags:
        console.note(f"{model} {result.version} is already deregistered; nothing to do")
    else:
        console.note(f"deregistered {model} {result.version} (event {result.tags[0]})")
