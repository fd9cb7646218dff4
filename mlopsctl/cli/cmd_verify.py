"""``mlopsctl verify``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from mlopsctl.cli import console

if TYPE_CHECKING:
    from mlopsctl.project import Project


@click.command("verify")
@click.argument("target", required=False, metavar="[MODEL[@VERSION]]")
@click.option("--signatures", is_flag=True,
              help="Check the signatures of the event tags instead of the artifacts: each must "
              "be signed by a key in the pinned allowed-signers file whose owner's roles grant "
              "the event.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(target: str | None, signatures: bool, as_json: bool) -> None:
    """Re-check stored artifacts in the remote end to end.

    Every version's blob is read, authenticated, decompressed and hashed against its manifest.
    Exits 1 and names every version that fails.

    With --signatures, checks the event tags instead (registrations, stage assignments,
    deprecations; of MODEL only, when given): each must carry an SSH signature that git accepts
    against the allowed-signers file named in .mlops/config.yaml (its hash pinned there as
    allowed_signers_hash), from a member whose roles in .mlops/access.yaml grant the event.
    Exits 1 and names every unsigned, badly signed or unauthorised tag.

    \b
    Example:
      mlopsctl verify
      mlopsctl verify churn
      mlopsctl verify churn@1.2.0 --json
      mlopsctl verify --signatures
    """
    from mlopsctl.errors import CheckFailed
    from mlopsctl.project import Project

    project = Project.open()
    console.warn_policy_drift(project.ws)
    if signatures:
        _signatures(project, target, as_json)
        return
    from mlopsctl.artifacts import verify

    checks = verify(project, target, console.ProgressReporter())
    failed = [c for c in checks if not c.ok]
    if as_json:
        console.emit_json({
            "ok": not failed,
            "versions": [{"model": c.model, "version": c.version, "ok": c.ok,
                          "skipped": c.skipped, "problem": c.problem or None} for c in checks],
        })
    else:
        for c in checks:
            mark = "skip" if c.skipped else ("ok  " if c.ok else "FAIL")
            print(f"{mark} {c.model}@{c.version}" + (f"  {c.problem}" if c.problem else ""))
    if failed:
        names = ", ".join(f"{c.model}@{c.version}" for c in failed)
        raise CheckFailed(f"{len(failed)} of {len(checks)} versions failed verification: {names}")
    if not as_json:
        console.note(f"{len(checks)} versions verified")


def _signatures(project: Project, target: str | None, as_json: bool) -> None:
    from mlopsctl.errors import CheckFailed, UsageError
    from mlopsctl.gitops.tags import check_name
    from mlopsctl.signing import verify_signatures

    model = None
    if target is not None:
        if "@" in target or "#" in target:
            name = re.split("[@#]", target, maxsplit=1)[0]
            raise UsageError("verify --signatures takes a model name, not a version or stage",
                             hint=f"mlopsctl verify --signatures {name}")
        model = check_name(target)
    checks = verify_signatures(project, model)
    failed = [c for c in checks if not c.ok]
    if as_json:
        console.emit_json({
            "ok": not failed,
            "allowed_signers": project.config.allowed_signers,
            "allowed_signers_hash": project.config.allowed_signers_hash,
            "tags": [{"tag": c.tag, "ok": c.ok, "signer": c.signer,
                      "problem": c.problem or None} for c in checks],
        })
    else:
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            detail = c.problem or (f"signed by {c.signer}" if c.signer else "")
            print(f"{mark} {c.tag}" + (f"  {detail}" if detail else ""))
    if failed:
        names = ", ".join(c.tag for c in failed)
        raise CheckFailed(f"{len(failed)} of {len(checks)} event tags failed the signature "
                          f"check: {names}")
    if not as_json:
        console.note(f"{len(checks)} event tags verified")
