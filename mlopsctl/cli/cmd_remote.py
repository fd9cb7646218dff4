"""``mlopsctl remote``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.group("remote")
def command() -> None:
    """The artifact remote where versions' blobs are stored.

    \b
    Example:
      mlopsctl remote migrate /mnt/team-store/churn
    """


@command.command("migrate")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def migrate(url: str, as_json: bool) -> None:
    """Copy every stored blob to a new artifact remote, verified, then switch to it.

    Each blob a registered version names is copied (whole or not at all), re-read and checked
    against its md5; gc's records of collected versions come along. Only when every copy
    checks out is the team's remote switched, in a commit of .dvc/config (push it to share
    it). A lost blob or a bad copy stops the migration before the switch; running it again
    copies only what is missing. The old remote is left as it was: remove it once teammates
    have pulled the switch. Local-directory remotes only, so far.

    To reach the same store by another path on one clone only, use
    `dvc remote modify --local mlops url PATH` instead.

    \b
    Example:
      mlopsctl remote migrate /mnt/team-store/churn
      mlopsctl remote migrate ~/stores/churn --json
    """
    from mlopsctl.migrate import migrate as run
    from mlopsctl.project import Project

    result = run(Project.open(), url, console.ProgressReporter())
    if as_json:
        console.emit_json(result.to_json())
        return
    console.note(f"copied {len(result.copied)} blobs ({console.human_size(result.bytes_copied)}) "
                 f"from {result.old} to {result.new}, each verified"
                 + (f"; {len(result.present)} were there already" if result.present else "")
                 + (f"; {len(result.collected)} collected versions' records carried over"
                    if result.collected else ""))
    if result.commit:
        console.note(f"switched the artifact remote in commit {result.commit[:8]} "
                     "(mlopsctl push shares it)")
