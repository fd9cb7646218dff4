"""``mlopsctl check``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mlopsctl.cli import ci, console


@click.command("check")
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[PATH]...")
@click.option("--remote", is_flag=True,
              help="Also check that every registered version's blob is in the artifact remote.")
@click.option("--pre-push", "pre_push", is_flag=True,
              help="Before a push: also check the signatures of the registry tags the remote "
              "does not have yet (where signing is required). The remote is --push-remote, "
              "else $PRE_COMMIT_REMOTE_NAME, else origin.")
@click.option("--push-remote", metavar="REMOTE", help="The git remote for --pre-push.")
@click.option("--codequality", "codequality", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the findings as a GitLab Code Quality report to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(paths: tuple[str, ...], remote: bool, pre_push: bool, push_remote: str | None,
            codequality: str | None, as_json: bool) -> None:
    """Check the registry: the fast guard for pre-commit hooks and CI.

    Every file under .mlops/ parses and validates against its schema; the governance pin
    holds; names and versions are legal; stored blobs are git-ignored and have their DVC
    pointers; no version manifest was edited after its tag; every stage tag was made with its
    gates (a tag from `gto assign` or written by hand, with no passing validation report, is a
    finding). Every finding is listed with its file, line and field; exit 1 if there is any.

    With PATHs (what pre-commit passes), only those files are checked, plus the pins.
    With --pre-push (the pre-push hook), the registry tags about to be pushed must also carry
    valid signatures where `signing: required`.
    Under GitHub Actions each finding is also an ::error annotation and a job summary is
    written.

    \b
    Example:
      mlopsctl check
      mlopsctl check .mlops/config.yaml --json
      mlopsctl check --remote --codequality gl-code-quality.json
      mlopsctl check --pre-push --push-remote origin
    """
    from mlopsctl.checks import run_checks
    from mlopsctl.errors import CheckFailed

    target = None
    if pre_push or push_remote:
        target = push_remote or os.environ.get("PRE_COMMIT_REMOTE_NAME") or "origin"
    report = run_checks(paths=paths, remote=remote, push_remote=target)
    findings = [f.to_json() for f in report.findings]
    if as_json:
        console.emit_json(report.to_json())
    else:
        for f in report.findings:
            where = f.where()
            print(f"{where + ': ' if where else ''}[{f.check}] {f.message}")
            if f.hint:
                print(f"    hint: {f.hint}")
    if codequality:
        ci.write_codequality(Path(codequality), findings)
    checked = f"{report.files} files and {report.tags} tags checked"
    if ci.github_actions():
        ci.annotate(findings, to_stderr=as_json)
        ci.append_summary(ci.findings_markdown("mlopsctl check", findings, checked))
        ci.set_outputs({"ok": report.ok, "findings": len(findings)})
    if report.findings:
        raise CheckFailed(f"{len(findings)} finding(s); {checked}")
    if not as_json:
        console.note(f"ok: {checked}")
