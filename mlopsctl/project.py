"""An opened registry: the workspace, its config, and the things derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, EnvironmentProblem, UsageError
from mlopsctl.workspace import Workspace


@dataclass
class Project:
    ws: Workspace
    config: mf.Config

    @classmethod
    def open(cls, start: Path | None = None) -> Project:
        ws = Workspace.find(start)
        ws.require_initialized()
        config = mf.load(ws.config_path, mf.Config, ws.rel(ws.config_path))
        return cls(ws, config)

    @property
    def root(self) -> Path:
        return self.ws.root

    @cached_property
    def remote(self):
        from mlopsctl.store.remote import load_remote

        return load_remote(self.root, self.config.remote)

    def key(self) -> bytes:
        from mlopsctl.store.keys import load_key

        kid = self.config.encryption.key_id
        if not kid:
            raise EnvironmentProblem(".mlops/config.yaml names no encryption key id",
                                     hint="mlopsctl init")
        return load_key(kid)

    # --- the policy pin ---------------------------------------------------------------------------

    def policy_hash(self) -> str:
        try:
            return mf.policy_hash(self.ws.policy_path.read_bytes())
        except FileNotFoundError:
            raise EnvironmentProblem(".mlops/policy.yaml is missing",
                                     hint="git checkout -- .mlops/policy.yaml") from None

    def policy_drift(self) -> str | None:
        """A sentence describing the drift, or None when policy.yaml matches its pin."""
        from mlopsctl.workspace import drift_message

        return drift_message(self.policy_hash(), self.config.constitutional_hash)

    def require_policy_pin(self) -> str:
        """Refuse (exit 1) when the policy drifted; return the pinned hash otherwise."""
        drift = self.policy_drift()
        if drift:
            raise CheckFailed(drift, hint="review the change, then `mlopsctl policy accept` "
                                          "(or `git checkout -- .mlops/policy.yaml`)")
        return self.config.constitutional_hash

    # --- models -----------------------------------------------------------------------------------

    def card(self, model: str) -> mf.ModelCard | None:
        path = self.ws.card_path(model)
        if not path.is_file():
            return None
        return mf.load(path, mf.ModelCard, self.ws.rel(path))

    def manifest(self, model: str, version: str) -> mf.VersionManifest | None:
        """The version's manifest from the work tree (None if absent)."""
        path = self.ws.manifest_path(model, version.removeprefix("v"))
        if not path.is_file():
            return None
        return mf.load(path, mf.VersionManifest, self.ws.rel(path))

    def manifest_at(self, model: str, version: str, commit: str) -> mf.VersionManifest | None:
        """The manifest as committed at ``commit`` (the version's tag): the tagged copy is the
        truth, being immutable. None when the tagged commit has none (a tag made by GTO or by
        hand)."""
        from mlopsctl.gitops.git import GitFailed, git

        rel = self.ws.rel(self.ws.manifest_path(model, version.removeprefix("v")))
        try:
            text = git(self.root, "cat-file", "blob", f"{commit}:{rel}")
        except GitFailed:
            return None
        return mf.parse_yaml(text, mf.VersionManifest, f"{rel} at {commit[:8]}")


def parse_ref(text: str) -> tuple[str, str | None, str | None]:
    """``model@1.2.0`` / ``model@v1.2.0`` / ``model@latest`` / ``model#stage`` / ``model``
    -> (model, version-without-v or 'latest', stage)."""
    from mlopsctl import semver
    from mlopsctl.gitops.tags import check_name

    if "#" in text:
        model, _, stage = text.partition("#")
        check_name(model)
        check_name(stage, "environment name")
        return model, None, stage
    if "@" in text:
        model, _, version = text.partition("@")
        check_name(model)
        if version in ("latest", "greatest"):
            return model, "latest", None
        if not semver.is_valid(version):
            raise UsageError(f"'{version}' is not a version",
                             hint="write MODEL@1.2.0, MODEL@latest or MODEL#ENV")
        return model, str(semver.parse(version)), None
    check_name(text)
    return text, None, None
