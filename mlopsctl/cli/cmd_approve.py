"""``mlopsctl approve``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("approve")
@click.argument("model")
@click.argument("version")
@click.option("--env", "env", required=True, metavar="ENV",
              help="The environment the approval is for.")
@click.option("-m", "--message", default="", help="Why (kept with the approval).")
@click.option("--json", "as_json", is_flag=True, help="Print the approval as JSON.")
def command(model: str, version: str, env: str, message: str, as_json: bool) -> None:
    """Approve a version for an environment whose config asks for approvals.

    Records who approved which artifact (by sha256) in the version's git note, signed with
    your SSH key when signing is on. `promote` to an environment with `approvals: N` needs N
    approvals from distinct members holding approve:ENV, the promoter not counted. Approving
    again replaces your earlier approval.

    \b
    Example:
      mlopsctl approve churn 1.2.0 --env production -m "reviewed the card and metrics"
    """
    from mlopsctl.approvals import approve
    from mlopsctl.project import Project

    entry = approve(Project.open(), f"{model}@{version}", env, message)
    if as_json:
        console.emit_json(entry)
    else:
        signed = " (signed)" if entry.get("signature") else ""
        console.note(f"{entry['approver']} approved {model} v{entry['version']} for {env}"
                     f"{signed}")
