"""``mlopsctl bump``."""

from __future__ import annotations

from pathlib import Path

import click

from mlopsctl.cli import console


@click.command("bump")
@click.argument("model")
@click.option("--artifact", type=click.Path(path_type=Path), metavar="PATH",
              help="The model file (default: the one recorded in the model card).")
@click.option("--major", "part", flag_value="major", help="Bump the major version.")
@click.option("--minor", "part", flag_value="minor", help="Bump the minor version (default).")
@click.option("--patch", "part", flag_value="patch", help="Bump the patch version.")
@click.option("--version", "version", metavar="X.Y.Z", help="Register exactly this version.")
@click.option("--metrics", type=click.Path(path_type=Path), metavar="FILE",
              help="Reported metrics (JSON or YAML mapping of numbers).")
@click.option("--params", type=click.Path(path_type=Path), metavar="FILE",
              help="Training parameters (JSON or YAML mapping), kept as lineage.")
@click.option("--data", type=click.Path(path_type=Path), multiple=True, metavar="PATH",
              help="A training data file to hash into the lineage (repeatable).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), metavar="FILE",
              help="The model's config file, hashed into the manifest.")
@click.option("--holdout", type=click.Path(path_type=Path), metavar="PATH",
              help="Holdout set for `validate` (CSV/Parquet), kept in the model card.")
@click.option("--target", metavar="COLUMN", help="The holdout's label column.")
@click.option("--description", help="Model card: what the model does.")
@click.option("--owner", help="Model card: who answers for it (default: you).")
@click.option("--intended-use", help="Model card: what it may and may not be used for.")
@click.option("-m", "--message", default="", help="Why this version exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the new version's manifest as JSON.")
def command(model: str, artifact: Path | None, part: str | None, version: str | None,
            metrics: Path | None, params: Path | None, data: tuple[Path, ...],
            config_file: Path | None, holdout: Path | None, target: str | None,
            description: str | None, owner: str | None, intended_use: str | None,
            message: str, as_json: bool) -> None:
    """Register the next version of MODEL.

    Streams the artifact once (sha256, zstd, AES-256-GCM), pushes the blob to the DVC remote,
    commits the immutable version manifest with its lineage, then creates the tag
    MODEL@vX.Y.Z. The first version is 0.1.0; later ones bump the minor part unless told.

    \b
    Example:
      mlopsctl bump churn --artifact model.pkl --metrics metrics.json \\
          --params params.yaml --data data/train.csv -m "retrained on October data"
      mlopsctl bump churn --patch
      mlopsctl bump churn --version 2.0.0-rc.1
    """
    from mlopsctl.errors import UsageError
    from mlopsctl.gitops.tags import check_name

    check_name(model)  # before git or the filesystem is touched
    from mlopsctl.project import Project
    from mlopsctl.versioning import BumpRequest, bump, read_mapping, read_metrics

    if metrics is not None and not metrics.is_file():
        raise UsageError(f"metrics file {metrics} does not exist")
    req = BumpRequest(
        model=model, artifact=artifact, part=part, version=version,
        metrics=read_metrics(metrics) if metrics else {},
        params=read_mapping(params, "params") if params else {},
        data=data, config_file=config_file, message=message, holdout=holdout, target=target,
        card={k: v for k, v in (("description", description), ("owner", owner),
                                ("intended_use", intended_use)) if v is not None},
    )
    result = bump(Project.open(), req, console.ProgressReporter())
    m = result.manifest
    if as_json:
        console.emit_json({"tag": result.tag, "commit": result.commit,
                           "manifest": m.model_dump(mode="json")})
        return
    stored = m.artifact.stored
    console.note(
        f"Registered {m.model} v{m.version}"
        + (f" (parent v{m.parent_version})" if m.parent_version else "")
        + f"  tag {result.tag}  commit {result.commit[:8]}"
    )
    console.note(f"  artifact {m.artifact.path}: {console.human_size(m.artifact.size)}, "
                 f"sha256 {m.artifact.sha256[:16]}..., stored {console.human_size(stored.size)}")
