"""Where things live: the repository root, the ``.mlops/`` layout, and the per-user directories
(keys, default remotes). The only module that knows these paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mlopsctl.errors import EnvironmentProblem
from mlopsctl.gitops.tags import path_part

MLOPS_DIR = ".mlops"
NOTES_REF = "refs/notes/mlops"


def user_config_dir() -> Path:
    """Per-user config (encryption keys): $MLOPSCTL_CONFIG_DIR, else $XDG_CONFIG_HOME/mlopsctl."""
    if env := os.environ.get("MLOPSCTL_CONFIG_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "mlopsctl"


def user_data_dir() -> Path:
    """Per-user data (the default artifact remotes): $MLOPSCTL_DATA_DIR, else
    $XDG_DATA_HOME/mlopsctl."""
    if env := os.environ.get("MLOPSCTL_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "mlopsctl"


def find_root(start: Path | None = None) -> Path:
    """The top of the git work tree containing ``start`` (cwd by default). Walks up looking for
    ``.git`` (a directory, or a file for worktrees/submodules) without running git."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    raise EnvironmentProblem(
        f"not inside a git repository: {here}",
        hint="run `git init` first, or cd into your project",
    )


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        return cls(find_root(start))

    @property
    def mlops(self) -> Path:
        return self.root / MLOPS_DIR

    @property
    def config_path(self) -> Path:
        return self.mlops / "config.yaml"

    @property
    def policy_path(self) -> Path:
        return self.mlops / "policy.yaml"

    @property
    def access_path(self) -> Path:
        return self.mlops / "access.yaml"

    @property
    def initialized(self) -> bool:
        return self.config_path.is_file()

    def model_dir(self, model: str) -> Path:
        """``.mlops/models/<name>``, the name made one safe path component (``tags.path_part``:
        lowercase names stay as they are, 'Big/Name' is '%42ig%2F%4Eame': never a subdirectory)."""
        return self.mlops / "models" / path_part(model)

    def card_path(self, model: str) -> Path:
        return self.model_dir(model) / "model.yaml"

    def manifest_path(self, model: str, version: str) -> Path:
        return self.model_dir(model) / "versions" / f"{version}.yaml"

    def pointer_path(self, model: str, version: str) -> Path:
        """The ``.dvc`` file DVC understands; its output is the (gitignored) stored blob."""
        return self.model_dir(model) / "artifacts" / f"{version}.zst.dvc"

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @cached_property
    def git_dir(self) -> Path:
        """The common git dir (shared by linked worktrees): where our lock lives."""
        dot_git = self.root / ".git"
        if dot_git.is_dir():
            return dot_git
        from mlopsctl.gitops.git import git_text

        return Path(git_text(self.root, "rev-parse", "--path-format=absolute", "--git-common-dir"))

    @property
    def lock_path(self) -> Path:
        return self.git_dir / "mlopsctl.lock"

    def quick_policy_drift(self) -> str | None:
        """The drift sentence (as Project.policy_drift), read without validating the config:
        read commands only warn, and must stay fast."""
        from mlopsctl.governance import drift_message, hash_files, pinned_in

        try:
            config = self.config_path.read_text()
            policy = self.policy_path.read_bytes()
            pinned = pinned_in(config)
            if pinned is None:
                return None
            return drift_message(hash_files(config, policy), pinned, policy)
        except Exception:  # a malformed file: the command itself will say so
            return None

    def quick_remote_name(self) -> str:
        """The artifact remote's name in config.yaml, read without validating the config (for
        read-only displays; commands that write validate it whole)."""
        import yaml

        try:
            loaded = yaml.safe_load(self.config_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise EnvironmentProblem(f"cannot read {self.config_path}: {exc}") from None
        name = loaded.get("remote") if isinstance(loaded, dict) else None
        return name if isinstance(name, str) and name else "mlops"

    def require_initialized(self) -> None:
        if not self.initialized:
            raise EnvironmentProblem(
                f"{self.root} has no mlopsctl registry ({MLOPS_DIR}/config.yaml is missing)",
                hint="mlopsctl init",
            )
