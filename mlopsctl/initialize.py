"""``mlopsctl init``: make a git repository a registry, idempotently."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from mlopsctl import manifests as mf
from mlopsctl import scaffold
from mlopsctl.errors import EnvironmentProblem, UsageError
from mlopsctl.gitops import refs
from mlopsctl.gitops.identity import repo_busy, require_identity
from mlopsctl.gitops.notes import configure_fetch
from mlopsctl.governance import governance_hash, load_yaml
from mlopsctl.templates import read_template
from mlopsctl.workspace import Workspace, user_data_dir

REMOTE_NAME = "mlops"
GITIGNORE = b"# Stored blobs live in the DVC remote; deploy slots are local state.\n" \
            b"/models/*/artifacts/*.zst\n/deploy/\n"


@dataclass
class InitResult:
    root: Path
    created: bool
    remote_url: str
    key_id: str
    key_present: bool
    commit: str | None = None
    endpoint_url: str | None = None
    changed: list[str] = field(default_factory=list)
    notes_fetch: list[str] = field(default_factory=list)  # git remotes now fetching the notes


def default_remote_url(registry_id: str) -> str:
    """A local directory outside the work tree shared by every clone of this registry on this
    machine; written as ``~/...`` when under HOME so that it follows the user."""
    path = user_data_dir() / "remotes" / registry_id
    home = Path.home()
    try:
        return "~/" + path.relative_to(home).as_posix()
    except ValueError:
        return str(path)


def init(start: Path | None = None, remote_url: str | None = None,
         force: bool = False, template: str | None = None, ci: str | None = None,
         model: str | None = None, endpoint_url: str | None = None) -> InitResult:
    ws = Workspace.find(start)
    root = ws.root
    actor = require_identity(root)
    busy = repo_busy(root, ws.git_dir)
    if busy:
        raise EnvironmentProblem(f"{busy} is in progress", hint="finish or abort it first")
    refs.current_branch(root)
    if endpoint_url and not (remote_url and remote_url.startswith("s3://")):
        raise UsageError("--endpoint-url goes with --remote s3://BUCKET/PREFIX (an "
                         "S3-compatible store such as MinIO)",
                         hint="mlopsctl init --remote s3://BUCKET/PREFIX --endpoint-url URL")
    cloud = bool(remote_url) and _local_dir(root, remote_url or "") is None
    if cloud and not ws.initialized:  # before a key is made: a failure leaves nothing behind
        _probe(root, REMOTE_NAME, remote_url or "", endpoint_url)

    from mlopsctl.store.keys import create_key, has_key

    files: dict[str, bytes] = {}
    if ws.initialized:
        config = mf.load(ws.config_path, mf.Config, ws.rel(ws.config_path))
        created = False
        key_id = config.encryption.key_id or ""
    else:
        created = True
        key_id = create_key()
        policy = read_template("policy.yaml")
        config = mf.Config(registry_id=secrets.token_hex(8),
                           encryption=mf.Encryption(key_id=key_id), constitutional_hash="")
        if template:  # `--template`: its environments and gates, pinned like the defaults
            config.environments = scaffold.environments(template, model or scaffold.DEFAULT_MODEL)
        config.constitutional_hash = governance_hash(config.model_dump(mode="json"),
                                                     load_yaml(policy))
        access = mf.parse_yaml(read_template("access.yaml"), mf.Access, "templates/access.yaml")
        access.members.append(mf.Member(email=actor.email, name=actor.name, roles=["admin"]))
        files[ws.rel(ws.policy_path)] = policy
        files[ws.rel(ws.config_path)] = mf.dump(config)
        files[ws.rel(ws.access_path)] = _access_yaml(access)
        files[ws.rel(ws.mlops / ".gitignore")] = GITIGNORE

    if template and not created:
        raise UsageError("templates apply when a registry is created; this one exists",
                         hint="edit the gates in .mlops/config.yaml, then `mlopsctl policy "
                         "accept` (or `mlopsctl init --ci github|gitlab` for the CI workflow)")
    files.update(scaffold.extra_files(root, template, model or scaffold.DEFAULT_MODEL, ci,
                                      actor.email))
    if remote_url and not created and not force:
        _refuse_remote_switch(root, config.remote, remote_url, endpoint_url)
    if remote_url and cloud and not created:
        _probe(root, config.remote, remote_url, endpoint_url)
    url = _configure_dvc(root, config.remote, remote_url, default_remote_url(config.registry_id),
                         endpoint_url)
    result_fetch = [r for r in _git_remotes(root) if configure_fetch(root, r)]
    for rel in (".dvc/config", ".dvc/.gitignore", ".dvcignore"):
        path = root / rel
        content = path.read_bytes() if path.is_file() else None
        if content is not None and _committed(root, rel) != content:
            files[rel] = content
    local = _local_dir(root, url)
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)

    from mlopsctl.store.remote import read_dvc_config

    endpoint = read_dvc_config(root).get(f'remote "{config.remote}"', {}).get("endpointurl")
    result = InitResult(root, created, url, key_id, has_key(key_id), changed=sorted(files),
                        notes_fetch=result_fetch, endpoint_url=endpoint)
    if files:
        head = refs.head_commit(root)
        msg = "mlopsctl: initialise the model registry" if created else \
            "mlopsctl: update the registry's configuration"
        result.commit = refs.commit_files(root, files, msg, head)
        refs.sync_worktree(root, files)
    return result


def _git_remotes(root: Path) -> list[str]:
    from mlopsctl.gitops.git import GitFailed, git

    try:
        return git(root, "remote").decode().split()
    except GitFailed:
        return []


def _refuse_remote_switch(root: Path, name: str, url: str, endpoint_url: str | None) -> None:
    """Switching the team's artifact remote orphans every stored blob: only with --force. So
    does pointing the same bucket name at another endpoint (another store)."""
    from mlopsctl import registry as reg
    from mlopsctl.store.remote import read_dvc_config

    section = read_dvc_config(root).get(f'remote "{name}"', {})
    existing = section.get("url")
    same_endpoint = endpoint_url is None or endpoint_url == section.get("endpointurl")
    versions = sum(len(m.active_versions) for m in reg.load(root).models.values())
    if not existing or (existing == url and same_endpoint) or not versions:
        return
    raise UsageError(
        f"the registry's {versions} version(s) are stored in remote '{name}' ({existing}); "
        f"switching the team's remote to {url} in .dvc/config would leave them all behind",
        hint=f"to reach the same store by another path on this clone only: dvc remote modify "
        f"--local {name} url {url}; to move the blobs: mlopsctl remote migrate {url}; to "
        "switch anyway (the versions become unfetchable): mlopsctl init --remote URL --force",
    )


def _access_yaml(access: mf.Access) -> bytes:
    header = read_template("access.yaml").split(b"schema_version:")[0]
    return header + mf.dump(access)


def _committed(root: Path, rel: str) -> bytes | None:
    from mlopsctl.gitops.git import GitFailed, git

    try:
        return git(root, "cat-file", "blob", f"HEAD:{rel}")
    except GitFailed:
        return None


def _local_dir(root: Path, url: str) -> Path | None:
    from mlopsctl.store.remote import Remote

    return Remote(root, REMOTE_NAME, url).local_dir


def _probe(root: Path, name: str, url: str, endpoint_url: str | None) -> None:
    """Reach a cloud remote before the team is pointed at it: a missing plugin, bucket or
    credentials is said now (exit 3), with nothing written."""
    from mlopsctl.store.remote import Remote

    # Without --endpoint-url, the configured one applies only if the URL stays the same.
    options = (("endpointurl", endpoint_url),) if endpoint_url else ()
    Remote(root, name, url, options).probe()


def _configure_dvc(root: Path, name: str, asked_url: str | None, default_url: str,
                   endpoint_url: str | None = None) -> str:
    """Initialise DVC if needed and make ``name`` the default remote, with analytics off.
    Keeps an existing URL (and its options) unless another is asked for; a new URL starts a
    fresh section (the old store's options do not apply), with ``endpointurl`` when given: the
    team's config, since every clone reaches the store there. Returns the remote's URL."""
    from mlopsctl.store.remote import read_dvc_config

    current = read_dvc_config(root)
    existing = current.get(f'remote "{name}"', {}).get("url")
    existing_endpoint = current.get(f'remote "{name}"', {}).get("endpointurl")
    core = current.get("core", {})
    url = asked_url or existing or default_url
    if (root / ".dvc").is_dir() and existing == url and core.get("remote") == name \
            and core.get("analytics", "").lower() == "false" \
            and (endpoint_url is None or endpoint_url == existing_endpoint):
        return url
    from dvc.repo import Repo

    for logger in ("dvc", "dvc_data", "dvc_objects", "scmrepo"):
        logging.getLogger(logger).setLevel(logging.CRITICAL)
    if not (root / ".dvc").is_dir():
        Repo.init(str(root)).close()
    repo = Repo(str(root))
    try:
        with repo.config.edit("repo") as conf:
            conf["core"]["remote"] = name
            section = dict(conf["remote"].get(name, {})) if existing == url else {}
            section["url"] = url
            if endpoint_url:
                section["endpointurl"] = endpoint_url
            conf["remote"][name] = section
        # A per-user choice: the local (git-ignored) config, not the team's committed one.
        with repo.config.edit("local") as conf:
            conf["core"]["analytics"] = False
    finally:
        repo.close()
    # DVC rewrites a relative local path relative to .dvc/: report what it stored.
    return read_dvc_config(root).get(f'remote "{name}"', {}).get("url", url)
