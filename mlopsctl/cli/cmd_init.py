"""``mlopsctl init``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("init")
@click.option("--remote", "remote_url", metavar="URL",
              help="Any DVC remote URL (s3://..., gs://..., ssh://..., a directory). "
              "Default: a local directory shared by the clones on this machine.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(remote_url: str | None, as_json: bool) -> None:
    """Make this git repository a model registry (idempotent).

    Writes .mlops/config.yaml, the default policy (its hash pinned in config) and access.yaml
    (you as admin), initialises DVC with the artifact remote, creates the encryption key outside
    the repository (only its id is recorded), and commits.

    \b
    Example:
      git init churn && cd churn
      mlopsctl init
      mlopsctl init --remote s3://my-bucket/models   # switch the artifact remote
    """
    from mlopsctl.initialize import init

    result = init(remote_url=remote_url)
    if as_json:
        console.emit_json({
            "root": str(result.root), "created": result.created, "remote": result.remote_url,
            "key_id": result.key_id, "key_present": result.key_present,
            "commit": result.commit, "changed": result.changed,
        })
        return
    verb = "Initialised" if result.created else "Registry already initialised in"
    console.note(f"{verb} {result.root}")
    console.note(f"  artifact remote: {result.remote_url}")
    console.note(f"  encryption key:  {result.key_id}"
                 + ("" if result.key_present else "  (NOT on this machine: mlopsctl key import)"))
    if result.commit:
        console.note(f"  committed {', '.join(result.changed)} as {result.commit[:8]}")
