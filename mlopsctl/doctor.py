"""``mlopsctl doctor``: repository health, as a list of findings (pure reporting, no fixes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlopsctl.errors import MlopsError
from mlopsctl.workspace import Workspace

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str
    hint: str = ""


def diagnose(start: Path | None = None) -> list[Finding]:
    ws = Workspace.find(start)
    findings = [_identity(ws), _busy(ws)]
    if not ws.initialized:
        findings.append(Finding("registry", FAIL, ".mlops/config.yaml is missing", "mlopsctl init"))
        return findings
    from mlopsctl.project import Project

    try:
        project = Project.open(ws.root)
    except MlopsError as exc:
        findings.append(Finding("config", FAIL, exc.message, exc.hint or ""))
        return findings
    findings.append(Finding("config", OK, ".mlops/config.yaml parses"))
    findings += [_dvc(project), _remote(project), _key(project), _policy(project),
                 _index(project), _targets(project)]
    findings += _tags(project)
    findings.append(_notes_fetch(project))
    return findings


def _notes_fetch(project) -> Finding:
    """Whether `git fetch` brings the team's validation reports (a fresh clone's does not)."""
    from mlopsctl.gitops.git import GitFailed, git
    from mlopsctl.gitops.notes import fetch_refspec

    try:
        remotes = git(project.root, "remote").decode().split()
    except GitFailed:
        remotes = []
    missing = []
    for remote in remotes:
        try:
            specs = git(project.root, "config", "--get-all", f"remote.{remote}.fetch").decode()
        except GitFailed:
            specs = ""
        if fetch_refspec(remote) not in specs.split():
            missing.append(remote)
    if missing:
        return Finding("reports", WARN, f"`git fetch {missing[0]}` does not bring the team's "
                       "validation reports (refs/notes/mlops)",
                       f"mlopsctl pull {missing[0]}  (fetches them and sets up git fetch)")
    return Finding("reports", OK, "git fetch brings the team's validation reports"
                   if remotes else "no git remote (reports stay in this clone)")


def _index(project) -> Finding:
    from mlopsctl.gitops.git import git

    out = git(project.root, "diff", "--cached", "--name-only", "--diff-filter=D", "HEAD", "--",
              ".mlops").decode().split()
    if out:
        return Finding("index", WARN, f"{len(out)} registry files are committed but missing "
                       "from the index (an interrupted write)",
                       "git reset -q HEAD -- .mlops  (the next mlopsctl write repairs it too)")
    return Finding("index", OK, "registry files in the index match HEAD")


def _targets(project) -> Finding:
    from mlopsctl.promotion import status

    try:
        rows = status(project)
    except MlopsError as exc:
        return Finding("targets", WARN, exc.message, exc.hint or "")
    drifted = [f"{r['model']} {r['environment']}" for r in rows
               if r["deployed_here"] and not (r["in_sync"] and r["healthy"])]
    if drifted:
        return Finding("targets", WARN, "out of sync with the registry: " + ", ".join(drifted),
                       "mlopsctl sync")
    return Finding("targets", OK, f"{len(rows)} deployments match the registry")


def _identity(ws: Workspace) -> Finding:
    from mlopsctl.gitops.identity import find_identity

    ident = find_identity(ws.root)
    if ident is None:
        return Finding("git identity", FAIL, "user.name / user.email are not set",
                       'git config --global user.name "Your Name" && '
                       "git config --global user.email you@example.com")
    return Finding("git identity", OK, str(ident))


def _busy(ws: Workspace) -> Finding:
    from mlopsctl.gitops.identity import repo_busy

    what = repo_busy(ws.root, ws.git_dir)
    if what:
        return Finding("git state", FAIL, f"{what} is in progress", "finish or abort it first")
    return Finding("git state", OK, "no merge, rebase or cherry-pick in progress")


def _dvc(project) -> Finding:
    from mlopsctl.store.remote import read_dvc_config

    if not (project.root / ".dvc").is_dir():
        return Finding("dvc", FAIL, "DVC is not initialised", "mlopsctl init")
    conf = read_dvc_config(project.root)
    if conf.get("core", {}).get("analytics", "").lower() != "false":
        return Finding("dvc", WARN, "DVC analytics are on",
                       "dvc config --local core.analytics false")
    return Finding("dvc", OK, f"default remote '{conf.get('core', {}).get('remote', '?')}'")


def _remote(project) -> Finding:
    try:
        remote = project.remote
    except MlopsError as exc:
        return Finding("remote", FAIL, exc.message, exc.hint or "")
    if not remote.direct:  # a cloud remote: reach it, and say what to fix if it cannot be
        try:
            remote.probe()
        except MlopsError as exc:
            return Finding("remote", FAIL, exc.message, exc.hint or "")
        return Finding("remote", OK, f"{remote.describe()} reachable")
    ok, detail = remote.reachable()
    # Not `init --remote`: that changes the team's .dvc/config and orphans every version.
    hint = (f"if the store is at another path on this machine: dvc remote modify --local "
            f"{remote.name} url PATH  (this clone only); or create the directory")
    return Finding("remote", OK if ok else FAIL, detail, "" if ok else hint)


def _key(project) -> Finding:
    try:
        project.key()
    except MlopsError as exc:
        return Finding("encryption key", FAIL, exc.message, exc.hint or "")
    return Finding("encryption key", OK, f"{project.config.encryption.key_id} available")


def _policy(project) -> Finding:
    try:
        drift = project.policy_drift()
    except MlopsError as exc:
        return Finding("policy pin", FAIL, exc.message, exc.hint or "")
    if drift:
        from mlopsctl.governance import drift_hint

        return Finding("policy pin", FAIL, drift, drift_hint(drift))
    forged = project.pin_provenance()
    if forged:
        return Finding("policy pin", FAIL, forged, "review the governance files, then "
                       "`mlopsctl policy accept -m WHY`")
    return Finding("policy pin", OK, "policy and gates match the pin "
                   f"{project.config.constitutional_hash}, set by `policy accept`")


def _tags(project) -> list[Finding]:
    from mlopsctl.gitops import tags as T
    from mlopsctl.gitops.git import GitFailed, git
    from mlopsctl.gitops.refs import read_tags

    records = read_tags(project.root)
    odd = [r.name for r in records if T.parse_tag(r.name) is None and ("@" in r.name or
                                                                         "#" in r.name)]
    created = [r.name for r in records if r.name.endswith("@created")]
    out = []
    if odd or created:
        out.append(Finding("tags", WARN, "tags that look like registry events but do not parse: "
                           + ", ".join((odd + created)[:10]),
                           "GTO ignores (or, for name@created, crashes on) these"))
    else:
        out.append(Finding("tags", OK, f"{len(records)} annotated tags parse"))
    try:
        upstream_remotes = git(project.root, "remote").decode().split()
    except GitFailed:
        upstream_remotes = []
    if not upstream_remotes:
        out.append(Finding("push", OK, "no git remote configured (nothing to push)"))
        return out
    remote = "origin" if "origin" in upstream_remotes else upstream_remotes[0]
    local = {r.name for r in records if T.parse_tag(r.name)}
    try:
        unpushed = sorted(_unpushed_tags(project.root, remote, local))
    except GitFailed as exc:
        out.append(Finding("push", WARN, f"could not reach git remote {remote}: "
                           f"{exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else ''}"))
        return out
    if unpushed:
        out.append(Finding("push", WARN, f"{len(unpushed)} registry tags not on {remote}: "
                           + ", ".join(unpushed[:5]) + ("..." if len(unpushed) > 5 else ""),
                           f"git push {remote} --tags"))
    else:
        out.append(Finding("push", OK, f"every registry tag is on {remote}"))
    return out


def _unpushed_tags(root: Path, remote: str, local: set[str]) -> set[str]:
    """Registry tags missing from ``remote`` (asks the remote with one `git ls-remote`)."""
    from mlopsctl.gitops.git import git

    out = git(root, "ls-remote", "--tags", remote, env={"GIT_TERMINAL_PROMPT": "0"}).decode()
    theirs = {line.split("\t", 1)[1].removeprefix("refs/tags/").removesuffix("^{}")
              for line in out.splitlines() if "\t" in line}
    return local - theirs
