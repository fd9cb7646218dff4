"""``mlopsctl bump``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlopsctl.cli import console


@click.command("bump")
@click.argument("model")
@click.option("--artifact", type=click.Path(path_type=Path), metavar="PATH",
              help="The model file (default: the one recorded in the model card).")
@click.option("--major", is_flag=True, help="Bump the major version.")
@click.option("--minor", is_flag=True, help="Bump the minor version (default).")
@click.option("--patch", is_flag=True, help="Bump the patch version.")
@click.option("--version", "version", metavar="X.Y.Z", help="Register exactly this version.")
@click.option("--metrics", type=click.Path(path_type=Path), metavar="FILE",
              help="Reported metrics (JSON or YAML mapping of numbers).")
@click.option("--params", type=click.Path(path_type=Path), metavar="FILE",
              help="Training parameters (JSON or YAML mapping), kept as lineage.")
@click.option("--data", type=click.Path(path_type=Path), multiple=True, metavar="PATH",
              help="Training data to hash into the lineage (repeatable): a file (sha256) or a "
              "directory (hashed as DVC hashes it, '<md5>.dir').")
@click.option("--config", "config_file", type=click.Path(path_type=Path), metavar="FILE",
              help="The model's config file, hashed into the manifest.")
@click.option("--holdout", type=click.Path(path_type=Path), metavar="PATH",
              help="Holdout set for `validate` (CSV/Parquet), kept in the model card.")
@click.option("--target", metavar="COLUMN", help="The holdout's label column.")
@click.option("--description", help="Model card: what the model does.")
@click.option("--owner", help="Model card: who answers for it (default: you).")
@click.option("--intended-use", help="Model card: what it may and may not be used for.")
@click.option("-m", "--message", default="", help="Why this version exists.")
@click.option("--dry-run", is_flag=True,
              help="Show the version, lineage and policy forecast; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the new version's manifest as JSON.")
def command(model: str, artifact: Path | None, major: bool, minor: bool, patch: bool,
            version: str | None,
            metrics: Path | None, params: Path | None, data: tuple[Path, ...],
            config_file: Path | None, holdout: Path | None, target: str | None,
            description: str | None, owner: str | None, intended_use: str | None,
            message: str, dry_run: bool, as_json: bool) -> None:
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
      mlopsctl bump churn --data data/ --dry-run

    With --dry-run nothing is written: it prints the version bump would take, the lineage it
    would record and which policy rules would fail as things stand. A real bump warns when the
    version can never pass an environment's compliance gate, naming the flag that fixes it.
    """
    from mlopsctl.errors import UsageError
    from mlopsctl.gitops.tags import check_name

    check_name(model)  # before git or the filesystem is touched
    parts = [p for p, on in (("major", major), ("minor", minor), ("patch", patch)) if on]
    if len(parts) > 1:
        raise UsageError(f"--{' and --'.join(parts)} conflict: give one of them",
                         hint=f"mlopsctl bump {model} --{parts[0]}")
    if parts and version:
        raise UsageError(f"--version and --{parts[0]} conflict: give one of them",
                         hint=f"mlopsctl bump {model} --version {version}")
    part = parts[0] if parts else None
    head = None
    if not dry_run:
        from mlopsctl.headstart import start_seal

        # The artifact streams on a worker thread while the rest of this command imports and
        # validates; bump() takes the result only if it sealed exactly what it would seal.
        head = start_seal(model, artifact, version, part)
    try:
        from mlopsctl.project import Project
        from mlopsctl.versioning import BumpRequest, bump, read_mapping, read_metrics

        if metrics is not None and not metrics.is_file():
            raise UsageError(f"metrics file {metrics} does not exist")
        req = BumpRequest(
            model=model, artifact=artifact, part=part, version=version,
            metrics=read_metrics(metrics) if metrics else {},
            params=read_mapping(params, "params") if params else {},
            data=data, config_file=config_file, message=message, holdout=holdout,
            target=target,
            card={k: v for k, v in (("description", description), ("owner", owner),
                                    ("intended_use", intended_use)) if v is not None},
        )
        project = Project.open()
        if dry_run:
            from mlopsctl.planning import preview

            plan = preview(project, req)
            if as_json:
                console.emit_json(plan.to_json())
            else:
                render_preview(plan)
            return
        result = bump(project, req, console.ProgressReporter(), head=head)
    finally:
        if head is not None:
            head.discard()  # whatever bump did not take
    m = result.manifest
    from mlopsctl.planning import never_passes

    warning = never_passes(project, m, project.card(model))
    if as_json:
        console.emit_json({"tag": result.tag, "commit": result.commit,
                           "manifest": m.model_dump(mode="json"), "warning": warning})
        return
    stored = m.artifact.stored
    console.note(
        f"Registered {m.model} v{m.version}"
        + (f" (parent v{m.parent_version})" if m.parent_version else "")
        + f"  tag {result.tag}  commit {result.commit[:8]}"
    )
    console.note(f"  artifact {m.artifact.path}: {console.human_size(m.artifact.size)}, "
                 f"sha256 {m.artifact.sha256[:16]}..., stored {console.human_size(stored.size)}")
    if warning:
        console.note(f"warning: {warning}")


def render_preview(plan: Any) -> None:
    """The dry run for humans (stderr, like every status line of bump)."""
    from mlopsctl.planning import fixes, pct

    note = console.note
    parent = f" (parent v{plan.parent_version})" if plan.parent_version else ""
    note(f"Would register {plan.model} v{plan.version}{parent} as tag {plan.tag}; "
         "nothing was written (dry run)")
    a = plan.artifact
    note(f"  artifact {a['path']}: {a['format']}, {console.human_size(a['size'])}")
    lin = plan.lineage
    code = f"{lin.code_commit[:8]}{' (dirty tree)' if lin.code_dirty else ''}" \
        if lin.code_commit else "none (no commit yet)"
    note(f"  lineage: code {code}; params {len(lin.params)}; data "
         + (", ".join(f"{d.path} {d.md5 or d.sha256[:16]}" for d in lin.data) or "none"))
    if plan.card_changes:
        note(f"  model card: would set {', '.join(plan.card_changes)}")
    note("  policy forecast:")
    for o in plan.forecast.judged:
        fix = "" if o.passed else "  fix: " + " / ".join(fixes(plan.model, o))
        note(f"    {'pass' if o.passed else 'FAIL'}  {o.id}: {o.detail}{fix}")
    for r in plan.forecast.pending:
        note(f"    ...   {r.id}: judged by `validate`")
    for e in plan.environments:
        need = f", {pct(e.required)} required" if e.required is not None else ""
        verdict = "can pass" if e.can_pass else "can NEVER pass as things stand"
        note(f"  {e.env}: at most {pct(e.best)} compliance{need}: {verdict}")
