"""An opened registry: the workspace, its config, and the things derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed, EnvironmentProblem, UsageError
from mlopsctl.workspace import Workspace

if TYPE_CHECKING:
    from mlopsctl.gitops.identity import Identity


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

    # --- the governance pin -----------------------------------------------------------------------

    def policy_hash(self) -> str:
        """The governance hash of the work tree: policy rules and trusted types, and every
        environment's gates, requires and approvals (see mlopsctl.governance)."""
        from mlopsctl.governance import hash_files

        return hash_files(self.ws.config_path.read_bytes(), self._policy_bytes())

    def _policy_bytes(self) -> bytes:
        try:
            return self.ws.policy_path.read_bytes()
        except FileNotFoundError:
            raise EnvironmentProblem(".mlops/policy.yaml is missing",
                                     hint="git checkout -- .mlops/policy.yaml") from None

    def policy_drift(self) -> str | None:
        """A sentence describing the drift, or None when the governed content matches its pin."""
        from mlopsctl.governance import drift_message

        return drift_message(self.policy_hash(), self.config.constitutional_hash,
                             self._policy_bytes())

    def pin_provenance(self) -> str | None:
        """Why the pin was not written by `policy accept` (a hand edit), or None."""
        from mlopsctl.governance import provenance_problem

        return provenance_problem(self.root, self.ws.config_path.read_text(),
                                  self.ws.git_dir / "mlopsctl" / "pin-provenance.json")

    def require_policy_pin(self) -> str:
        """Refuse (exit 1) when governance drifted or the pin was edited by hand; return the
        pinned hash otherwise."""
        from mlopsctl.governance import drift_hint

        drift = self.policy_drift()
        if drift:
            raise CheckFailed(drift, hint=drift_hint(drift))
        forged = self.pin_provenance()
        if forged:
            raise CheckFailed(forged, hint="review the governance files, then `mlopsctl policy "
                              "accept -m WHY` to pin them properly")
        return self.config.constitutional_hash

    # --- roles ------------------------------------------------------------------------------------

    def require_role(self, action: str, env: str | None = None) -> Identity:
        """The acting git identity, after checking that access.yaml lets it do ``action`` (in
        ``env``); CheckFailed (exit 1) otherwise."""
        from mlopsctl.access import require
        from mlopsctl.gitops.identity import require_identity

        actor = require_identity(self.root)
        require(self, actor.email, action, env)
        return actor

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
