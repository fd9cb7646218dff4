"""``mlopsctl fetch``."""

from __future__ import annotations

from pathlib import Path

import click

from mlopsctl.cli import complete, console


@click.command("fetch")
@click.argument("ref", metavar="MODEL@VERSION|MODEL#ENV", shell_complete=complete.refs)
@click.option("-o", "--out", type=click.Path(path_type=Path), metavar="PATH",
              help="Where to write the file (default: its original name, here).")
@click.option("--force", is_flag=True, help="Replace an existing file that differs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(ref: str, out: Path | None, force: bool, as_json: bool) -> None:
    """Restore a verified copy of a version's artifact.

    Pulls the blob from the remote, decrypts, decompresses and hashes it in one pass into a temp
    file, and moves it into place only when its sha256 matches the manifest. On another machine
    set MLOPSCTL_KEY to the registry's key (see `mlopsctl key export`).

    \b
    Example:
      mlopsctl fetch churn@1.2.0 -o model.pkl
      mlopsctl fetch churn#production
      mlopsctl fetch churn@latest
    """
    from mlopsctl.artifacts import fetch
    from mlopsctl.project import Project

    project = Project.open()
    console.warn_policy_drift(project.ws)
    result = fetch(project, ref, out, force=force, reporter=console.ProgressReporter())
    if as_json:
        console.emit_json({"model": result.model, "version": result.version,
                           "path": str(result.path), "sha256": result.sha256,
                           "size": result.size, "unchanged": result.unchanged})
        return
    state = "already up to date" if result.unchanged else "verified"
    console.note(f"{result.model}@{result.version} -> {result.path} ({state}, "
                 f"sha256 {result.sha256[:16]}...)")
