"""``mlopsctl pull``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("pull")
@click.argument("remote", required=False, default="origin")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(remote: str, as_json: bool) -> None:
    """Fetch the team's registry tags and notes from a git remote; merge the notes.

    Your branch is never touched. Tags you do not have arrive. A tag you both made for the same
    event (same name, same commit: two clones promoting one version at once) is replaced by
    the remote's, so your next push goes through. A tag you both have pointing at different
    commits is never overwritten but reported (exit 1), with the commands that resolve it.
    Pulling also sets up `git fetch` to bring the team's notes. The remote's notes are merged
    into refs/notes/mlops commit by commit: reports for different environments are combined,
    and for the same environment the later one wins. If your branch is behind the remote's,
    you are told so (then `git pull`).

    \b
    Example:
      mlopsctl pull
      mlopsctl pull upstream --json
    """
    from mlopsctl.errors import CheckFailed
    from mlopsctl.project import Project
    from mlopsctl.teamsync import conflict_hint, pull

    project = Project.open()
    console.warn_policy_drift(project.ws)
    result = pull(project, remote)
    if as_json:
        console.emit_json(result.to_json())
    else:
        for tag in result.new_tags:
            print(f"  new  {tag}")
        for tag in result.replaced:
            print(f"  took {remote}'s {tag} (the same event as yours)")
        parts = [f"{len(result.new_tags)} new registry tags"]
        parts.append(f"notes merged on {len(result.notes_merged)} commits")
        console.note(f"pulled from {remote}: " + ", ".join(parts))
        if result.branch_state in ("behind", "diverged"):
            state = "behind" if result.branch_state == "behind" else "diverged from"
            console.note(f"your branch {result.branch} is {state} {remote}'s: "
                         "run `git pull --no-rebase` to bring in the manifests (rebasing would "
                         "move the commits your version tags point at)")
    if result.conflicts:
        lines = "; ".join(f"{c.tag} (yours -> {c.ours[:8]}, {remote}'s -> {c.theirs[:8]})"
                          for c in result.conflicts)
        raise CheckFailed(
            f"{len(result.conflicts)} registry tag(s) differ from {remote}'s and were left "
            f"alone: {lines}", hint=conflict_hint(project, result.conflicts, remote))
