"""The ``local`` target: ``<deploy_root>/<env>/<model>/{blue,green}/`` plus ``current``, a
symlink to the live slot switched with an atomic rename. Each slot holds the artifact under its
original file name and ``slot.json`` (model, version, sha256).

Everything it writes stays inside the repository: ``deploy_root`` must be a relative path
without ``..``, and no directory on the way to a slot may be a symlink (one planted at
``<deploy_root>/<env>`` would send the artifact copies and the ``current`` flip anywhere), as the
kubernetes target's ``output_dir`` is checked."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from mlopsctl.deploy import SLOTS, DeployedSlot, SlotPlan, TargetState
from mlopsctl.errors import EnvironmentProblem, UsageError
from mlopsctl.fsio import atomic_write, sha256_file
from mlopsctl.gitops.tags import path_part

META = "slot.json"


class LocalTarget:
    name = "local"

    def __init__(self, base: Path, root: Path | None = None) -> None:
        self.base = base
        self.root = root

    @classmethod
    def inside(cls, root: Path, deploy_root: str) -> LocalTarget:
        """The target at ``root / deploy_root``; UsageError when ``deploy_root`` leaves the
        repository (absolute, ``~``, or through ``..``)."""
        parts = PurePosixPath(deploy_root.replace("\\", "/")).parts
        if not deploy_root or deploy_root.startswith(("/", "~")) or ".." in parts \
                or Path(deploy_root).is_absolute():
            raise UsageError(f"deploy_root {deploy_root!r} is outside the repository",
                             hint="set deploy_root in .mlops/config.yaml to a relative path "
                             "inside the repository, e.g. .mlops/deploy")
        return cls(root / deploy_root, root)

    def dir(self, env: str, model: str) -> Path:
        home = self.base / path_part(env) / path_part(model)  # names never make a path
        self._refuse_symlinks(home)
        return home

    def _refuse_symlinks(self, home: Path) -> None:
        """No directory from the repository root down to ``home`` may be a symlink."""
        if self.root is None:
            return
        path = self.root
        for part in home.relative_to(self.root).parts:
            path = path / part
            if path.is_symlink():
                raise EnvironmentProblem(
                    f"refusing to deploy through the symlink {path} "
                    f"(-> {os.readlink(path)}): the local target writes only inside the "
                    "repository", hint=f"remove the symlink (rm {path}), then `mlopsctl sync`")

    def slot_dir(self, env: str, model: str, slot: str) -> Path:
        return self.dir(env, model) / slot

    def prepare(self, plan: SlotPlan, slot: str, manifest: Any, artifact: Path) -> None:
        """Put a verified artifact into ``slot`` (never the live one): built beside it, then
        swapped in with renames, so a reader sees the old slot or the new one."""
        home = self.dir(plan.env, plan.model)
        if self.live_slot(plan.env, plan.model) == slot:
            raise EnvironmentProblem(f"refusing to overwrite the live slot {slot} of "
                                     f"{plan.model} in {plan.env}")
        home.mkdir(parents=True, exist_ok=True)
        self.sweep(plan.env, plan.model)
        tmp = home / f".{slot}.new-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        name = Path(manifest.artifact.path).name
        shutil.copyfile(artifact, tmp / name)
        meta = {"model": manifest.model, "version": manifest.version, "file": name,
                "sha256": manifest.artifact.sha256,
                "prepared_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
        atomic_write(tmp / META, json.dumps(meta, indent=2).encode())
        final = home / slot
        old = home / f".{slot}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def sweep(self, env: str, model: str) -> list[str]:
        """Remove slot fills left by killed processes (``.<slot>.new-<pid>``/``.old-<pid>``)."""
        removed = []
        home = self.dir(env, model)
        for leftover in home.glob(".*.*-*") if home.is_dir() else []:
            if not leftover.is_dir() or leftover.name.split(".")[1] not in SLOTS:
                continue
            try:
                os.kill(int(leftover.name.rsplit("-", 1)[1]), 0)
                continue  # its writer is still running
            except (ValueError, ProcessLookupError):
                pass
            except PermissionError:
                continue
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover.name)
        return removed

    def clear(self, env: str, model: str, slot: str) -> None:
        """Empty an idle slot (renamed away first, so no reader sees half of it)."""
        if self.live_slot(env, model) == slot:
            raise EnvironmentProblem(f"refusing to empty the live slot {slot} of {model} in {env}")
        path = self.slot_dir(env, model, slot)
        if path.exists():
            gone = path.with_name(f".{slot}.old-{os.getpid()}")
            os.replace(path, gone)
            shutil.rmtree(gone, ignore_errors=True)

    def artifact_in(self, env: str, model: str, slot: str) -> Path | None:
        meta = self._meta(self.slot_dir(env, model, slot))
        if meta is None:
            return None
        return self.slot_dir(env, model, slot) / str(meta["file"])

    def activate(self, plan: SlotPlan) -> None:
        """Point ``current`` at the plan's live slot (atomic), or remove it when none is live."""
        home = self.dir(plan.env, plan.model)
        link = home / "current"
        if plan.live_slot is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            return
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".current.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(plan.live_slot, tmp)
        os.replace(tmp, link)

    def live_slot(self, env: str, model: str) -> str | None:
        return self._live_in(self.dir(env, model))

    @staticmethod
    def _live_in(home: Path) -> str | None:
        try:
            target = os.readlink(home / "current")
        except OSError:
            return None
        return target if target in SLOTS else None

    def state(self, env: str, model: str) -> TargetState:
        home = self.dir(env, model)
        if not home.is_dir():  # never deployed here: nothing more to look at
            return TargetState(None, {slot: DeployedSlot(None, None, True, "empty")
                                      for slot in SLOTS})
        slots = {slot: self._inspect(home / slot) for slot in SLOTS}
        return TargetState(self._live_in(home), slots)

    @staticmethod
    def _meta(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads((path / META).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _inspect(self, path: Path) -> DeployedSlot:
        meta = self._meta(path)
        if meta is None:
            return DeployedSlot(None, None, path.exists() is False, "empty")
        version = f"v{meta.get('version')}"
        artifact = path / str(meta.get("file"))
        if not artifact.is_file():
            return DeployedSlot(version, None, False, "artifact file missing")
        digest = sha256_file(artifact)
        if digest != meta.get("sha256"):
            return DeployedSlot(version, digest, False, "artifact bytes do not match sha256")
        return DeployedSlot(version, digest, True, "ok")
