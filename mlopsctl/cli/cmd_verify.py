"""``mlopsctl verify``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlopsctl.cli import complete, console

if TYPE_CHECKING:
    from mlopsctl.project import Project


@click.command("verify")
@click.argument("target", required=False, metavar="[MODEL[@VERSION]]",
                shell_complete=complete.refs)
@click.option("--signatures", is_flag=True,
              help="Check the signatures of the event tags instead of the artifacts: each must "
              "be signed by a key in the pinned allowed-signers file whose owner's roles grant "
              "the event.")
@click.option("--trust-anchor", "anchor", type=click.Path(dir_okay=False, path_type=Path),
              help="With --signatures: an allowed-signers file kept outside the repository (a CI "
              "secret) naming the founding admins' keys. Every change to a governance file must "
              "then be signed by an admin of the state before it, back to this anchor.")
@click.option("--release", "release", metavar="REF",
              help="Re-run the gates for the version a stage tag (MODEL#ENV#N, or MODEL#ENV) "
              "released, from the model card's holdout, trusting no stored report.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(target: str | None, signatures: bool, anchor: Path | None, release: str | None,
            as_json: bool) -> None:
    """Re-check stored artifacts in the remote end to end.

    Every version's blob is read, authenticated, decompressed and hashed against its manifest.
    Exits 1 and names every version that fails.

    With --signatures, checks the event tags instead (registrations, stage assignments,
    deprecations; of MODEL only, when given): each must carry an SSH signature that git accepts
    against the allowed-signers file named in .mlops/config.yaml (its hash pinned there as
    allowed_signers_hash), from a member whose roles in .mlops/access.yaml grant the event.
    Exits 1 and names every unsigned, badly signed or unauthorised tag, every tag whose recorded
    actor is not its signer, and every rollback to a version never live in that environment.

    With --release REF, recomputes instead of trusting: the gates of the stage tag's environment
    are run again on the version it released (exit 1 when they fail), and nothing is written.

    With --trust-anchor FILE, first walks the history of the governance files (access.yaml,
    the allowed-signers file, policy.yaml, config.yaml) from that anchor, as TUF rotates its
    root: a change not signed by an admin of the state before it fails, and so does every
    check after it (a self-granted role, a key added and re-pinned by an outsider).

    \b
    Example:
      mlopsctl verify
      mlopsctl verify churn
      mlopsctl verify churn@1.2.0 --json
      mlopsctl verify --signatures
      mlopsctl verify --signatures --trust-anchor "$RUNNER_TEMP/admins.allowed_signers"
      mlopsctl verify --release "churn#production#7"
    """
    from mlopsctl.errors import CheckFailed
    from mlopsctl.project import Project

    project = Project.open()
    console.warn_policy_drift(project.ws)
    if anchor is not None and not signatures:
        from mlopsctl.errors import UsageError

        raise UsageError("--trust-anchor goes with --signatures",
                         hint="mlopsctl verify --signatures --trust-anchor FILE")
    if release is not None:
        _release(project, release, as_json)
        return
    if signatures:
        _signatures(project, target, anchor, as_json)
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


def _signatures(project: Project, target: str | None, anchor: Path | None,
                as_json: bool) -> None:
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
    from mlopsctl.signing import SignatureCheck
    from mlopsctl.trust import event_problems, walk_governance

    changes = walk_governance(project, anchor) if anchor is not None else []
    broken = [c for c in changes if not c.ok]
    checks = verify_signatures(project, model)
    extra = event_problems(project, {c.tag: c.signer or "" for c in checks if c.ok})
    checks = [SignatureCheck(c.tag, False, c.signer, extra[c.tag]) if c.tag in extra else c
              for c in checks]
    failed = [c for c in checks if not c.ok]
    if as_json:
        governance = {"governance": [{"commit": c.commit, "subject": c.subject, "ok": c.ok,
                                      "signer": c.signer, "problem": c.problem or None}
                                     for c in changes]} if anchor is not None else {}
        console.emit_json({
            "ok": not failed and not broken, **governance,
            "allowed_signers": project.config.allowed_signers,
            "allowed_signers_hash": project.config.allowed_signers_hash,
            "tags": [{"tag": c.tag, "ok": c.ok, "signer": c.signer,
                      "problem": c.problem or None} for c in checks],
        })
    else:
        for g in changes:
            mark = "ok  " if g.ok else "FAIL"
            detail = g.problem or f"signed by admin {g.signer}"
            print(f"{mark} governance {g.commit[:8]} {g.subject[:50]}  {detail}")
        for c in checks:
            mark = "ok  " if c.ok else "FAIL"
            detail = c.problem or (f"signed by {c.signer}" if c.signer else "")
            print(f"{mark} {c.tag}" + (f"  {detail}" if detail else ""))
    if broken:
        link = broken[0]
        raise CheckFailed(f"the governance history breaks at {link.commit[:8]} "
                          f"(\"{link.subject[:60]}\"): {link.problem}; nothing it changed can be "
                          "trusted",
                          hint="governance files change only in commits signed by an admin of "
                          "the state before")
    if failed:
        names = ", ".join(c.tag for c in failed)
        raise CheckFailed(f"{len(failed)} of {len(checks)} event tags failed the signature "
                          f"check: {names}")
    if not as_json:
        console.note(f"{len(checks)} event tags verified")


def _release(project: Project, ref: str, as_json: bool) -> None:
    from mlopsctl.errors import CheckFailed
    from mlopsctl.trust import verify_release

    doc = verify_release(project, ref, console.ProgressReporter())
    if as_json:
        console.emit_json(doc)
    else:
        for gate in doc["gates"]:
            if gate["applicable"]:
                mark = "ok  " if gate["passed"] else "FAIL"
                print(f"{mark} {gate['gate']} = {gate['value']:.4g}")
    if not doc["passed"]:
        raise CheckFailed(f"{doc['model']} {doc['version']} ({doc['tag']}) fails the gates of "
                          f"{doc['environment']} when recomputed"
                          + (f": {doc['error']}" if doc.get("error") else ""),
                          hint="roll it back (mlopsctl rollback) or find out why its report said "
                          "otherwise")
    if not as_json:
        console.note(f"{doc['model']} {doc['version']} passes the gates of "
                     f"{doc['environment']} again")
