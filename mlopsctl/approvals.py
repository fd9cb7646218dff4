"""Approvals: ``mlopsctl approve MODEL VERSION --env ENV`` and the check ``promote`` makes.

An approval is an entry in the version's git note (``approvals.<env>``: a list), recording who
approved which artifact (its sha256) for which environment, when, and why. GTO never reads notes,
so the tag grammar it shares with us is untouched. With signing on, the entry is signed with the
approver's SSH key (namespace ``mlopsctl-approval``); under ``signing: required`` only signed
entries whose signer is the recorded approver count.

``promote`` to an environment with ``approvals: N`` needs N distinct approvers, other than the
promoter, each holding ``approve:ENV`` in access.yaml, who approved this very artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, UsageError
from mlopsctl.project import Project

NOTE_SECTION = "approvals"


@dataclass(frozen=True)
class Counted:
    approvers: list[str]  # emails that count, in order
    ignored: list[tuple[str, str]]  # (approver, why it does not count)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def entries(project: Project, commit: str, env: str) -> list[dict[str, Any]]:
    from mlopsctl.gitops.notes import read_note

    found = read_note(project.root, commit).get(NOTE_SECTION, {}).get(env, [])
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def approve(project: Project, ref: str, env: str, message: str = "") -> dict[str, Any]:
    """Record the acting identity's approval of ``ref`` for ``env``; returns the entry."""
    from mlopsctl import registry as reg
    from mlopsctl.artifacts import resolve
    from mlopsctl.fsio import file_lock
    from mlopsctl.gitops.notes import read_note
    from mlopsctl.signing import should_sign

    if env not in project.config.environments:
        raise UsageError(f"unknown environment '{env}'",
                         hint="environments: " + ", ".join(project.config.environments))
    project.require_policy_pin()
    actor = project.require_role("approve", env)
    found = resolve(project, reg.load(project.root), ref)
    entry: dict[str, Any] = {
        "model": found.manifest.model, "version": found.manifest.version, "environment": env,
        "approver": actor.email, "actor": str(actor), "at": _now(),
        "artifact_sha256": found.manifest.artifact.sha256,
        "message": message or None,
    }
    if should_sign(project.config, project.root):
        from mlopsctl.attest import APPROVAL_NAMESPACE, signed

        entry = signed(project.root, entry, APPROVAL_NAMESPACE)
    with file_lock(project.ws.lock_path):
        doc = read_note(project.root, found.entry.commit)
        doc.setdefault("schema_version", 1)
        section = doc.setdefault(NOTE_SECTION, {})
        listed = [e for e in section.get(env, []) if isinstance(e, dict)
                  and e.get("approver", "").casefold() != actor.email.casefold()]
        section[env] = [*listed, entry]  # one standing approval per approver
        _write_note(project, found.entry.commit, doc)
    return entry


def _write_note(project: Project, commit: str, doc: dict[str, Any]) -> None:
    import json

    from mlopsctl.gitops.git import git
    from mlopsctl.workspace import NOTES_REF

    body = json.dumps(doc, indent=2, sort_keys=True).encode()
    git(project.root, "notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "-", commit, input=body)


def count(project: Project, commit: str, manifest: mf.VersionManifest, env: str,
          promoter: str | None, access: mf.Access | None = None) -> Counted:
    """Which approvals of this version for ``env`` count, and why the others do not."""
    from mlopsctl.access import load_access

    access = access or load_access(project)
    signers = _signers(project)
    counted: list[str] = []
    ignored: list[tuple[str, str]] = []
    for e in entries(project, commit, env):
        who = str(e.get("approver", ""))
        why = _reason(e, who, manifest, env, promoter, access, signers, counted)
        if why:
            ignored.append((who, why))
        else:
            counted.append(who.casefold())
    return Counted(counted, ignored)


def _signers(project: Project) -> bytes | None:
    """The allowed-signers content when signing is required (approvals must then be signed)."""
    if project.config.signing != "required":
        return None
    from mlopsctl.signing import load_allowed_signers

    return load_allowed_signers(project)[1]


def _reason(e: dict[str, Any], who: str, manifest: mf.VersionManifest, env: str,
            promoter: str | None, access: mf.Access, signers: bytes | None,
            counted: list[str]) -> str:
    from mlopsctl.access import allowed

    if e.get("artifact_sha256") != manifest.artifact.sha256 or e.get("environment") != env:
        return "approved another artifact or environment"
    if promoter and who.casefold() == promoter.casefold():
        return "the promoter cannot approve their own release"
    if who.casefold() in counted:
        return "already counted"
    if not allowed(access, who, "approve", env):
        return f"does not hold approve:{env}"
    if signers is not None:
        from mlopsctl.attest import APPROVAL_NAMESPACE, verify

        verdict = verify(e, APPROVAL_NAMESPACE, signers)
        if not verdict.ok:
            return f"signature: {verdict.problem}"
        if (verdict.signer or "").casefold() != who.casefold():
            return f"recorded approver {who} is not the signer {verdict.signer}"
    return ""


def require(project: Project, commit: str, manifest: mf.VersionManifest, env: str,
            environment: mf.Environment, promoter: str) -> list[str]:
    """The approvers, when ``environment.approvals`` is met; CheckFailed (exit 1) otherwise."""
    needed = environment.approvals
    if needed <= 0:
        return []
    got = count(project, commit, manifest, env, promoter)
    if len(got.approvers) >= needed:
        return got.approvers
    detail = "; ".join(f"{who}: {why}" for who, why in got.ignored)
    raise CheckFailed(
        f"{manifest.model} {manifest.version} needs {needed} approval(s) for {env} from members "
        f"holding approve:{env} other than {promoter}; it has {len(got.approvers)}"
        + (f" (not counted: {detail})" if detail else ""),
        hint=f"ask a reviewer to run `mlopsctl approve {manifest.model} {manifest.version} "
        f"--env {env}`")
