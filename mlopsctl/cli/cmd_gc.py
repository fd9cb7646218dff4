"""``mlopsctl gc``."""

from __future__ import annotations

import click

from mlopsctl.cli import console


@click.command("gc")
@click.option("--keep-last", "keep_last", type=click.IntRange(min=1), default=5,
              show_default=True, metavar="N", help="Keep the N greatest versions of each model.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(keep_last: int, dry_run: bool, as_json: bool) -> None:
    """Remove the stored blobs of versions the registry no longer needs.

    Per model, keeps the N greatest versions, every version holding a stage, and every version
    in the blue or green slot of any environment (what a rollback returns to); removes the
    other versions' blobs from the artifact remote, and their .dvc pointers from the branch in
    one commit (push it, so teammates' `dvc pull` asks only for blobs that exist). Tags,
    manifests and tagged commits stay: the history is whole, `verify` reports collected
    versions as such, and fetching one says its blob is gone. Registry tags are fetched
    from `origin` first, so the decision is made on the team's state. Works on any artifact
    remote (a directory, s3://, gs://, azure://, ...): a record of each removal is left beside
    the remote's objects, so `push` and `verify` know the blob was collected, not lost.

    \b
    Example:
      mlopsctl gc --dry-run
      mlopsctl gc --keep-last 3
      mlopsctl gc --json
    """
    from mlopsctl.project import Project
    from mlopsctl.retention import gc

    project = Project.open()
    if dry_run:
        console.warn_policy_drift(project.ws)
    result = gc(project, keep_last=keep_last, dry_run=dry_run)
    for line in result.notes:
        console.note(line)
    if as_json:
        console.emit_json(result.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    if result.removed:
        t = console.table("version", "stored size", title=f"{verb} from {result.remote}")
        for item in result.removed:
            t.add_row(item.name, console.human_size(item.size))
        console.out().print(t)
    kept = ", ".join(f"{i.name} ({'; '.join(i.reasons)})" for i in result.kept)
    if kept:
        console.note(f"kept {len(result.kept)}: {kept}")
    if result.already_gone:
        console.note(f"already gone: {', '.join(i.name for i in result.already_gone)}")
    summary = (f"{verb} {len(result.removed)} blobs ({console.human_size(result.freed)})"
               if result.removed else "nothing to remove")
    console.note(summary + (" (dry run: nothing removed)" if dry_run and result.removed else ""))
    if result.pointers and dry_run:
        console.note(f"would drop {len(result.pointers)} .dvc pointers from the branch")
    elif result.commit:
        console.note(f"dropped {len(result.pointers)} .dvc pointers in commit {result.commit[:8]}"
                     " (mlopsctl push shares it)")
