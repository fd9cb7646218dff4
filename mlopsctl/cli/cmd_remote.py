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
      mlopsctl remote migrate s3://team-models/churn
    """


@command.command("migrate")
@click.argument("url")
@click.option("--endpoint-url", "endpoint_url", metavar="URL",
              help="With an s3:// URL: the S3 API endpoint of an S3-compatible store (MinIO, "
              "...), recorded in .dvc/config with the switch.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def migrate(url: str, endpoint_url: str | None, as_json: bool) -> None:
    """Copy every stored blob to a new artifact remote, verified, then switch to it.

    Each blob a registered version names is copied (whole or not at all), re-read and checked
    against its md5; gc's records of collected versions come along. Only when every copy
    checks out is the team's remote switched, in a commit of .dvc/config (push it to share
    it). A lost blob or a bad copy stops the migration before the switch; running it again
    copies only what is missing. The old remote is left as it was: remove it once teammates
    have pulled the switch. Either side may be a directory or any remote DVC reaches
    (s3://, gs://, azure://, ...; install the plugin: pip install 'mlopsctl[s3]'), with its
    credentials from the usual environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ...).

    To reach the same store by another path on one clone only, use
    `dvc remote modify --local mlops url PATH` instead.

    \b
    Example:
      mlopsctl remote migrate /mnt/team-store/churn
      mlopsctl remote migrate s3://team-models/churn
      mlopsctl remote migrate s3://models/churn --endpoint-url https://minio.internal:9000
      mlopsctl remote migrate ~/stores/churn --json
    """
    from mlopsctl.migrate import migrate as run
    from mlopsctl.project import Project

    result = run(Project.open(), url, console.ProgressReporter(), endpoint_url=endpoint_url)
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
