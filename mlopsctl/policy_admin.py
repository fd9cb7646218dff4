"""Reading, checking and re-pinning the policy file (the effects behind ``mlopsctl policy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import policy as pol
from mlopsctl.errors import CheckFailed, MlopsError
from mlopsctl.project import Project

ACCEPT_PREFIX = "mlopsctl: accept policy "


def _load_policy(project: Project) -> mf.Policy:
    return mf.load(project.ws.policy_path, mf.Policy, ".mlops/policy.yaml")


def acceptances(root: Path) -> list[dict[str, str]]:
    """Every `policy accept` commit, newest first (one `git log`; no config parsing)."""
    from mlopsctl.gitops.git import git

    log = git(root, "log", "--format=%H%x00%aI%x00%an <%ae>%x00%s%x00%b%x1e",
              f"--grep=^{ACCEPT_PREFIX}", "--", ".mlops/config.yaml").decode()
    out = []
    for record in filter(None, (r.strip("\n") for r in log.split("\x1e"))):
        sha, date, actor, subject, body = (record.split("\x00") + [""] * 5)[:5]
        reason = "\n".join(line for line in body.strip().splitlines()
                           if not line.startswith(("previous: ", "actor: "))).strip()
        previous = next((line.split(": ", 1)[1] for line in body.splitlines()
                         if line.startswith("previous: ")), "")
        out.append({"commit": sha, "date": date, "actor": actor,
                    "hash": subject.removeprefix(ACCEPT_PREFIX).split()[0],
                    "previous": previous, "message": reason})
    return out


def describe() -> dict[str, Any]:
    project = Project.open()
    policy = _load_policy(project)
    actual = project.policy_hash()
    return {
        "name": policy.name,
        "pinned_hash": project.config.constitutional_hash,
        "actual_hash": actual,
        "pin_intact": actual == project.config.constitutional_hash,
        "rules": [r.model_dump(mode="json") for r in policy.rules],
        "acceptances": acceptances(project.root),
    }


def check_policy() -> list[str]:
    project = Project.open()
    problems = []
    drift = project.policy_drift()
    if drift:
        problems.append(drift)
    try:
        problems += pol.problems(_load_policy(project))
    except MlopsError as exc:
        problems.append(exc.message)
    return problems


def accept_policy(message: str) -> tuple[str, str, str | None]:
    """Pin policy.yaml's current hash in config, in a commit of its own. Returns
    (old hash, new hash, commit or None when nothing changed)."""
    from mlopsctl.fsio import file_lock
    from mlopsctl.gitops import refs
    from mlopsctl.gitops.identity import require_identity

    project = Project.open()
    actor = require_identity(project.root)
    problems = pol.problems(_load_policy(project))
    if problems:
        raise CheckFailed("the policy is not well-formed: " + "; ".join(problems),
                          hint="fix .mlops/policy.yaml first")
    old, new = project.config.constitutional_hash, project.policy_hash()
    if old == new:
        return old, new, None
    ws = project.ws
    rel_config = ws.rel(ws.config_path)
    with file_lock(ws.lock_path):
        head = refs.head_commit(project.root)
        # Re-pin in the committed config only: other uncommitted config edits stay uncommitted
        # (and stay in the work tree, with the new pin applied there too).
        committed = _committed_text(project, head, rel_config) or ws.config_path.read_text()
        files = {rel_config: _repin(committed, old, new).encode(),
                 ws.rel(ws.policy_path): ws.policy_path.read_bytes()}
        body = (message + "\n\n" if message else "") + f"previous: {old}\nactor: {actor}\n"
        commit = refs.commit_files(project.root, files, f"{ACCEPT_PREFIX}{new}\n\n{body}", head)
        from mlopsctl.fsio import atomic_write
        from mlopsctl.gitops.git import git

        atomic_write(ws.config_path, _repin(ws.config_path.read_text(), old, new).encode())
        atomic_write(ws.policy_path, files[ws.rel(ws.policy_path)])
        git(project.root, "update-index", "--add", "--cacheinfo",
            f"100644,{_blob(project, commit, rel_config)},{rel_config}")
        git(project.root, "update-index", "--add", "--", ws.rel(ws.policy_path))
    return old, new, commit


def _committed_text(project: Project, commit: str | None, rel: str) -> str | None:
    from mlopsctl.gitops.git import GitFailed, git

    if not commit:
        return None
    try:
        return git(project.root, "cat-file", "blob", f"{commit}:{rel}").decode()
    except GitFailed:
        return None


def _blob(project: Project, commit: str, rel: str) -> str:
    from mlopsctl.gitops.git import git_text

    return git_text(project.root, "rev-parse", f"{commit}:{rel}")


def _repin(text: str, old: str, new: str) -> str:
    import re

    updated, n = re.subn(r"(?m)^(constitutional_hash:\s*)['\"]?" + re.escape(old) + r"['\"]?\s*$",
                         lambda m: m.group(1) + new, text)
    if n != 1:
        raise CheckFailed("cannot find `constitutional_hash` in .mlops/config.yaml to re-pin")
    return updated
