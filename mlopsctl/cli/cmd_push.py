"""``mlopsctl push``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("push")
@click.argument("remote", required=False, default="origin")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(remote: str, as_json: bool) -> None:
    """Send the registry to a git remote: the branch, every registry tag and the notes.

    First checks that every registered version's blob is in the artifact remote (a version
    teammates could not fetch is refused, exit 1). Then one `git push --atomic` sends the current
    branch, every registry tag and refs/notes/mlops: all of it lands or none of it. A rejection
    (exit 1) means the remote has registry events you do not have, e.g. someone promoted first
    and took the same counter: `mlopsctl pull`, then retry. An unreachable remote exits 3.

    \b
    Example:
      mlopsctl push
      mlopsctl push upstream --json
    """
    from mlopsctl.project import Project
    from mlopsctl.teamsync import PushRejected, push

    project = Project.open()
    console.warn_policy_drift(project.ws)
    try:
        result = push(project, remote)
    except PushRejected as exc:
        if as_json:
            console.emit_json(exc.to_json())
        raise
    if as_json:
        console.emit_json(result.to_json())
        return
    if result.updated:
        for ref in result.updated:
            print(f"  {ref.removeprefix('refs/tags/')}")
        console.note(f"pushed {len(result.updated)} refs to {remote} "
                     f"({result.versions_checked} versions' blobs checked)")
    else:
        console.note(f"{remote} is up to date: nothing to push")
