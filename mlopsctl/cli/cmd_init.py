"""``mlopsctl init``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("init")
@click.option("--remote", "remote_url", metavar="URL",
              help="Any DVC remote URL (s3://..., gs://..., ssh://..., a directory). "
              "Default: a local directory shared by the clones on this machine.")
@click.option("--endpoint-url", "endpoint_url", metavar="URL",
              help="With --remote s3://...: the S3 API endpoint of an S3-compatible store "
              "(MinIO, Ceph, R2, ...), recorded in .dvc/config for the whole team. Credentials "
              "come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), never "
              "from the repository.")
@click.option("--force", is_flag=True,
              help="With --remote: switch the team's remote even though registered versions' "
              "blobs stay in the old one (see `mlopsctl remote migrate` to move them).")
@click.option("--template", metavar="NAME",
              help="Start from a template: minimal, sklearn-classifier (classification gates and "
              "a model card with its holdout) or sklearn-regressor (R², MAE/RMSE gates).")
@click.option("--model", metavar="NAME",
              help="With --template: the model the card (and per-model gates) are for "
              "(default: model).")
@click.option("--ci", type=click.Choice(["github", "gitlab"]),
              help="Also write a CI workflow: check and validate on pull requests; check-ref, "
              "verify --signatures and verify --release on pushed stage tags.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(remote_url: str | None, endpoint_url: str | None, force: bool,
            template: str | None, model: str | None, ci: str | None, as_json: bool) -> None:
    """Make this git repository a model registry (idempotent).

    Writes .mlops/config.yaml, the default policy (its hash pinned in config) and access.yaml
    (you as admin), initialises DVC with the artifact remote, creates the encryption key outside
    the repository (only its id is recorded), and commits. Sets up each git remote so that
    `git fetch` brings the team's validation reports (refs/notes/mlops) too, and turns DVC's
    analytics off in this clone's local DVC config.

    A cloud remote is reached before anything is written: a missing plugin (pip install
    'mlopsctl[s3]'), bucket or credentials exits 3 and says which.

    On a registry that has versions, --remote is refused unless --force is given: their blobs
    stay in the old remote. To reach the same store by another path on one clone, use
    `dvc remote modify --local mlops url URL`; to move the blobs, `mlopsctl remote migrate URL`.

    \b
    Example:
      git init churn && cd churn
      mlopsctl init
      mlopsctl init --remote s3://my-bucket/models   # switch the artifact remote
      mlopsctl init --remote s3://models/churn --endpoint-url https://minio.internal:9000
      mlopsctl init --template sklearn-classifier --model churn --ci github
    """
    from mlopsctl.initialize import init

    result = init(remote_url=remote_url, force=force, template=template, ci=ci, model=model,
                  endpoint_url=endpoint_url)
    if as_json:
        console.emit_json({
            "root": str(result.root), "created": result.created, "remote": result.remote_url,
            "endpoint_url": result.endpoint_url,
            "key_id": result.key_id, "key_present": result.key_present,
            "commit": result.commit, "changed": result.changed,
            "notes_fetch": result.notes_fetch,
        })
        return
    verb = "Initialised" if result.created else "Registry already initialised in"
    console.note(f"{verb} {result.root}")
    console.note(f"  artifact remote: {result.remote_url}"
                 + (f" at {result.endpoint_url}" if result.endpoint_url else ""))
    console.note(f"  encryption key:  {result.key_id}"
                 + ("" if result.key_present else "  (NOT on this machine: mlopsctl key import)"))
    if result.commit:
        console.note(f"  committed {', '.join(result.changed)} as {result.commit[:8]}")
    for remote in result.notes_fetch:
        console.note(f"  git fetch {remote} now brings the team's validation reports")
