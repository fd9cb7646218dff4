"""Enforcement under ``signing: required``: what counts when signatures are the truth.

- **Reports**: a validation report counts only when it carries a good SSH signature (namespace
  ``mlopsctl-report``) by a signer in the pinned allowed-signers file whose roles grant
  ``validate:ENV``, and that signer is the recorded validator.
- **Events**: status, sync and show fold only the event tags that ``verify --signatures``
  accepts (signed by someone whose role grants the event); an unsigned or badly signed tag is
  not an event, so ``sync`` never deploys a forged one.
- **Governance history**: ``verify --signatures --trust-anchor FILE`` walks every commit that
  changed a governance file (access.yaml, the allowed-signers file, policy.yaml, config.yaml),
  oldest first. The first must be signed by a key in the anchor (an allowed-signers file kept
  outside the repository: a CI secret); each later one by an admin (``*``) of the state before
  it, with that state's keys, as in TUF's root rotation. A self-granted role, or an outsider
  who adds her key and re-pins it, breaks the chain at the commit that did it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, UsageError
from mlopsctl.project import Project

GOVERNANCE_FILES = (".mlops/access.yaml", ".mlops/policy.yaml", ".mlops/config.yaml")


def required(project: Project) -> bool:
    return project.config.signing == "required"


# --- reports ------------------------------------------------------------------------------------


def report_problem(project: Project, report: dict[str, Any], env: str) -> str | None:
    """Why ``report`` does not count under ``signing: required`` (None: it counts, or signing
    is not required)."""
    if not required(project):
        return None
    from mlopsctl.access import allowed, load_access
    from mlopsctl.attest import REPORT_NAMESPACE, verify
    from mlopsctl.signing import load_allowed_signers

    verdict = verify(report, REPORT_NAMESPACE, load_allowed_signers(project)[1])
    if not verdict.ok:
        return f"the {env} report is not validly signed ({verdict.problem})"
    signer = verdict.signer or ""
    if not allowed(load_access(project), signer, "validate", env):
        return f"the {env} report is signed by {signer}, whose roles do not grant validate:{env}"
    recorded = str(report.get("validated_by") or "")
    if f"<{signer.casefold()}>" not in recorded.casefold():
        return f"the {env} report names {recorded or 'nobody'} as validator but is signed by " \
               f"{signer}"
    return None


# --- events -------------------------------------------------------------------------------------


def trusted_registry(project: Project, gto_files: bool = False, registry: Any = None) -> Any:
    """The registry folded from trusted event tags only, under ``signing: required`` (every
    tag otherwise: then ``registry``, when the caller has read it already)."""
    from mlopsctl import registry as reg
    from mlopsctl.gitops.refs import read_tags

    if not required(project):
        return registry if registry is not None else reg.load(project.root, gto_files)
    records = read_tags(project.root)
    gto = reg.read_gto_files(project.root) if gto_files else None
    from mlopsctl.signing import verify_signatures

    signers = {c.tag: c.signer or "" for c in verify_signatures(project) if c.ok}
    # A good signature on a bad event (an actor who is not the signer, a rollback to a version
    # never live there) is no event either.
    good = set(signers) - set(event_problems(project, signers, approvals=False))
    from mlopsctl.gitops import tags as T

    # Only registry events need a signature; other tags (lightweight counters) pass through.
    return reg.build([r for r in records
                      if r.name in good or not r.annotated or T.parse_tag(r.name) is None], gto)


# --- governance history -------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    commit: str
    subject: str
    ok: bool
    signer: str | None = None
    problem: str = ""


def _verify_commit(root: Path, signers: bytes, commit: str) -> tuple[bool, str | None, str]:
    import re

    with tempfile.TemporaryDirectory(prefix="mlopsctl-anchor-") as tmp:
        path = Path(tmp) / "allowed_signers"
        path.write_bytes(signers)
        env = dict(os.environ, LC_ALL="C", LANG="C")
        proc = subprocess.run(["git", "-c", f"gpg.ssh.allowedSignersFile={path}", "verify-commit",
                               "--raw", commit], cwd=root, capture_output=True, env=env,
                              check=False)
    text = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
    if proc.returncode != 0:  # the verdict is git's exit code
        if "No principal matched" in text:
            return False, None, "signed by a key that is not an admin's in the state before"
        if "no signature" in text.lower() or not text.strip():
            return False, None, "unsigned"
        return False, None, "bad signature: " + (text.strip().splitlines() or [""])[-1]
    match = re.search(r'^Good "git" signature for (.+?) with ', text, re.MULTILINE)
    return True, (match.group(1).split(",")[0].strip() if match else None), ""


def _blob(root: Path, commit: str, rel: str) -> bytes | None:
    from mlopsctl.gitops.git import GitFailed, git

    try:
        return git(root, "cat-file", "blob", f"{commit}:{rel}")
    except GitFailed:
        return None


def _admin_signers(root: Path, commit: str) -> bytes:
    """The allowed-signers lines of the admins (``*``) in the governance state at ``commit``."""
    from mlopsctl.access import allowed

    config_text = _blob(root, commit, ".mlops/config.yaml")
    access_text = _blob(root, commit, ".mlops/access.yaml")
    if config_text is None or access_text is None:
        return b""
    config = mf.parse_yaml(config_text, mf.Config, f".mlops/config.yaml at {commit[:8]}")
    access = mf.parse_yaml(access_text, mf.Access, f".mlops/access.yaml at {commit[:8]}")
    signers = _blob(root, commit, config.allowed_signers) if config.allowed_signers else None
    lines = []
    for line in (signers or b"").decode(errors="replace").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        principals = [p for p in words[0].split(",") if allowed(access, p, "*")]
        if principals:
            lines.append(" ".join([",".join(principals), *words[1:]]))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def governance_files(project: Project) -> list[str]:
    files = list(GOVERNANCE_FILES)
    if project.config.allowed_signers:
        files.append(project.config.allowed_signers)
    return files


def walk_governance(project: Project, anchor: Path) -> list[Change]:
    """Every commit (oldest first) that changed a governance file, each checked against the
    admins of the state before it; the first against the trust anchor."""
    from mlopsctl.gitops.git import git

    try:
        anchor_signers = anchor.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the trust anchor {anchor}: {exc.strerror}") from None
    if not anchor_signers.strip():
        raise UsageError(f"the trust anchor {anchor} is empty",
                         hint="write the founding admins' `EMAIL SSH-PUBLIC-KEY` lines into it")
    # Every path the signers file ever had (config may have moved it), from the first commit on.
    log = git(project.root, "log", "--reverse", "--format=%H%x00%s", "--full-history",
              "HEAD", "--", *governance_files(project)).decode()
    changes: list[Change] = []
    signers = anchor_signers
    for line in filter(None, log.splitlines()):
        commit, _, subject = line.partition("\x00")
        ok, who, problem = _verify_commit(project.root, signers, commit)
        changes.append(Change(commit, subject, ok, who, problem))
        if not ok:
            break  # nothing after a broken link can be trusted
        signers = _admin_signers(project.root, commit) or signers
    return changes


def require_trusted_history(project: Project, anchor: Path) -> list[Change]:
    changes = walk_governance(project, anchor)
    bad = [c for c in changes if not c.ok]
    if bad:
        c = bad[0]
        raise CheckFailed(f"governance change {c.commit[:8]} (\"{c.subject[:60]}\") is not signed "
                          f"by an admin of the state before it: {c.problem}",
                          hint="governance files (access.yaml, allowed signers, policy, config) "
                          "change only in commits signed by an admin; revert the change")
    return changes


# --- events that verify but do not hold up ------------------------------------------------------


def event_problems(project: Project, signers: dict[str, str],
                   approvals: bool = True) -> dict[str, str]:
    """For tags whose signature holds (tag -> signer): those whose recorded actor is not the
    signer, and rollbacks to a version that was never live in that environment before."""
    from mlopsctl import registry as reg
    from mlopsctl.gitops import tags as T

    good_tags = set(signers)
    registry = reg.load(project.root)
    problems: dict[str, str] = {}
    for state in registry.models.values():
        ordered = sorted(state.events, key=lambda e: (e.timestamp, e.counter or 0))
        for i, event in enumerate(ordered):
            if event.tag not in good_tags:
                continue
            actor = str(event.data.get("actor") or "")
            signer = signers.get(event.tag, "")
            if actor and signer and f"<{signer.casefold()}>" not in actor.casefold():
                problems[event.tag] = f"the recorded actor {actor} is not the signer {signer}"
                continue
            if event.kind == T.ASSIGN and event.data.get("rollback") is True:
                before = {e.version for e in ordered[:i] if e.tag in good_tags
                          and e.kind == T.ASSIGN and e.stage == event.stage}
                if event.version not in before:
                    problems[event.tag] = (f"a rollback to {event.version}, which was never live "
                                           f"in {event.stage} before")
        for env, holder in state.stages.items() if approvals else ():
            if holder.tag in good_tags and holder.tag not in problems \
                    and holder.data.get("rollback") is not True:
                missing = _approval_gap(project, state, env, holder) \
                    or _report_gap(project, state, env, holder)
                if missing:
                    problems[holder.tag] = missing
    return problems


def _report_gap(project: Project, state: Any, env: str, holder: Any) -> str | None:
    """Under ``signing: required``: why the live version's report for ``env`` does not hold
    (unsigned, signed by someone who may not validate, failed, or for another artifact)."""
    if not required(project):
        return None
    from mlopsctl.validation import latest_report

    entry = state.versions.get(holder.version or "")
    if entry is None:
        return None
    report = latest_report(project, entry.commit, env)
    if report is None:  # notes not fetched, or a version released before signing: cannot judge
        return None
    problem = report_problem(project, report, env)
    if problem:
        return f"live in {env}, but {problem}"
    manifest = project.manifest_at(state.name, entry.version, entry.commit)
    if report.get("passed") is not True or (
            manifest and report.get("artifact_sha256") != manifest.artifact.sha256):
        return f"live in {env}, but its signed {env} report did not pass for this artifact"
    return None


def _approval_gap(project: Project, state: Any, env: str, holder: Any) -> str | None:
    """Why the live version of ``env`` lacks the approvals the environment asks for, or None."""
    from mlopsctl.approvals import count

    environment = project.config.environments.get(env)
    entry = state.versions.get(holder.version or "")
    if environment is None or environment.approvals <= 0 or entry is None:
        return None
    manifest = project.manifest_at(state.name, entry.version, entry.commit)
    if manifest is None:
        return None
    actor = str(holder.data.get("actor") or "")
    promoter = actor[actor.find("<") + 1:actor.rfind(">")] if "<" in actor else None
    got = count(project, entry.commit, manifest, env, promoter)
    if len(got.approvers) >= environment.approvals:
        return None
    return (f"live in {env} with {len(got.approvers)} of the {environment.approvals} approval(s) "
            f"it needs")


# --- recompute instead of trusting ---------------------------------------------------------------


def verify_release(project: Project, ref: str, reporter: Any = None) -> dict[str, Any]:
    """Re-run the gates for the version a stage tag (``MODEL#ENV#N``, or ``MODEL#ENV`` for the
    current holder) released, from the model card's holdout, trusting no note: the report is
    recomputed and not written anywhere."""
    from mlopsctl import registry as reg
    from mlopsctl.gitops import tags as T
    from mlopsctl.validation import ValidateRequest, validate

    parsed = T.parse_tag(ref)
    registry = reg.load(project.root)
    event = None
    if parsed is not None and parsed.kind == T.ASSIGN and parsed.counter is not None:
        event = next((e for e in registry.history if e.tag == ref), None)
    elif "#" in ref:
        model, _, env = ref.partition("#")
        state = registry.model(model)
        event = state.stages.get(env) if state else None
    if event is None or not event.stage or not (event.version or "").startswith("v"):
        raise UsageError(f"{ref} is not a stage assignment of a registered version",
                         hint="give a stage tag (MODEL#ENV#N) or MODEL#ENV")
    version = event.version or ""
    request = ValidateRequest(ref=f"{event.model}@{version[1:]}", env=event.stage,
                              record=False, remember=False)
    report = validate(project, request, reporter)
    return {"ref": ref, "tag": event.tag, "model": event.model, "version": event.version,
            "environment": event.stage, "passed": report.get("passed") is True,
            "policy_hash": report.get("policy_hash"), "gates": report.get("gates", []),
            "compliance": report.get("compliance", {}).get("score"),
            "error": report.get("error")}
