"""Reading, checking and re-pinning the policy file (the effects behind ``mlopsctl policy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import policy as pol
from mlopsctl.errors import CheckFailed, MlopsError
from mlopsctl.governance import ACCEPT_PREFIX
from mlopsctl.project import Project


def _load_policy(project: Project) -> mf.Policy:
    return mf.load(project.ws.policy_path, mf.Policy, ".mlops/policy.yaml")


def acceptances(root: Path) -> list[dict[str, str]]:
    """Every `policy accept` commit, newest first (one `git log`; no config parsing)."""
    from mlopsctl.gitops.git import git

    log = git(root, "log", "--format=%H%x00%aI%x00%an <%ae>%x00%s%x00%b%x1e",
              f"--grep=^{ACCEPT_PREFIX}").decode()
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
    from mlopsctl.governance import canonical, load_yaml

    project = Project.open()
    policy = _load_policy(project)
    actual = project.policy_hash()
    governed = canonical(load_yaml(project.ws.config_path.read_bytes()),
                         load_yaml(project.ws.policy_path.read_bytes()))
    return {
        "name": policy.name,
        "pinned_hash": project.config.constitutional_hash,
        "actual_hash": actual,
        "pin_intact": actual == project.config.constitutional_hash
        and project.pin_provenance() is None,
        "rules": [r.model_dump(mode="json") for r in policy.rules],
        "trusted_types": list(policy.trusted_types),
        "environments": governed["environments"],
        "acceptances": acceptances(project.root),
    }


def check_policy() -> list[str]:
    project = Project.open()
    problems = []
    drift = project.policy_drift()
    if drift:
        problems.append(drift)
    forged = project.pin_provenance()
    if forged:
        problems.append(forged)
    try:
        problems += pol.problems(_load_policy(project))
    except MlopsError as exc:
        problems.append(exc.message)
    for name, env in project.config.environments.items():
        unknown = [r for r in env.requires if r not in project.config.environments]
        if unknown:
            problems.append(f"environment '{name}' requires unknown environments: "
                            + ", ".join(unknown))
    return problems


def accept_policy(message: str) -> tuple[str, str, str | None]:
    """Pin the governance hash (policy.yaml and the environments' gates, requires and approvals
    in config.yaml) in a commit of its own, which also commits both files as they are in the
    work tree: what is pinned is what was reviewed. Returns (old hash, new hash, commit or None
    when nothing changed)."""
    from mlopsctl.fsio import atomic_write, file_lock
    from mlopsctl.gitops import refs
    from mlopsctl.gitops.git import git

    project = Project.open()
    actor = project.require_role("policy")
    problems = pol.problems(_load_policy(project))
    if problems:
        raise CheckFailed("the policy is not well-formed: " + "; ".join(problems),
                          hint="fix .mlops/policy.yaml first")
    old, new = project.config.constitutional_hash, project.policy_hash()
    if old == new and project.pin_provenance() is None:
        return old, new, None
    ws = project.ws
    rel_config, rel_policy = ws.rel(ws.config_path), ws.rel(ws.policy_path)
    with file_lock(ws.lock_path):
        head = refs.head_commit(project.root)
        files = {rel_config: _repin(ws.config_path.read_text(), old, new).encode(),
                 rel_policy: ws.policy_path.read_bytes()}
        body = (message + "\n\n" if message else "") + f"previous: {old}\nactor: {actor}\n"
        commit = refs.commit_files(project.root, files, f"{ACCEPT_PREFIX}{new}\n\n{body}", head)
        atomic_write(ws.config_path, files[rel_config])
        git(project.root, "update-index", "--add", "--", rel_config, rel_policy)
    return old, new, commit


def _repin(text: str, old: str, new: str) -> str:
    import re

    updated, n = re.subn(r"(?m)^(constitutional_hash:\s*)['\"]?" + re.escape(old) + r"['\"]?\s*$",
                         lambda m: m.group(1) + new, text)
    if n != 1:
        raise CheckFailed("cannot find `constitutional_hash` in .mlops/config.yaml to re-pin")
    return updated
