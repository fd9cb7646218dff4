"""Following the registry: a cheap look at the refs every interval, and on a change the registry
is read, the versions it wants served are loaded beside the live one, and the routing swapped.

The cheap look is a ``stat`` of ``packed-refs`` and of the ``refs/tags`` directories (a tag
created, moved or deleted renames a file in one of them); only when that signature changes, or
every ``FULL_CHECK_S`` anyway, does one ``git for-each-ref refs/tags`` (names and objects) decide
whether anything really changed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from mlopsctl import registry as reg
from mlopsctl.errors import MlopsError
from mlopsctl.project import Project
from mlopsctl.serving.holder import Failure, ModelHolder
from mlopsctl.serving.metrics import Metrics
from mlopsctl.serving.model import Loaded, LoadFailed, load_from_registry

log = logging.getLogger("mlopsctl.serve")
FULL_CHECK_S = 10.0
RETRY_FAILED_S = 30.0
CACHE = 3  # loaded versions kept: live, canary and the one before (instant rollback)


class RefWatcher:
    def __init__(self, root: Path, git_dir: Path) -> None:
        self.root, self.git_dir = root, git_dir
        self._stat: Any = None
        self._digest: str | None = None
        self._full_at = 0.0

    def _stat_signature(self) -> Any:
        parts: list[Any] = []
        for path in (self.git_dir / "packed-refs", self.git_dir / "reftable"):
            try:
                st = path.stat()
                parts.append((path.name, st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                parts.append((path.name, None))
        for dirpath, _dirs, _files in os.walk(self.git_dir / "refs" / "tags"):
            st = os.stat(dirpath)
            parts.append((dirpath, st.st_ino, st.st_mtime_ns))
        return tuple(parts)

    def digest(self) -> str:
        from mlopsctl.gitops.git import git

        out = git(self.root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags")
        return hashlib.sha256(out).hexdigest()

    def changed(self) -> bool:
        """True when the tags differ from the last call (and on the first call)."""
        signature = self._stat_signature()
        now = time.monotonic()
        if signature == self._stat and now - self._full_at < FULL_CHECK_S:
            return False
        self._stat, self._full_at = signature, now
        digest = self.digest()
        if digest == self._digest:
            return False
        self._digest = digest
        return True


def wanted_versions(state: reg.ModelState | None, model: str, env: str,
                    canary: bool) -> tuple[str | None, str | None]:
    """(live, canary) as the registry has them, 'v'-less. The canary is the version on its way
    in (staging's, when it differs from the live one), else the one in the other slot."""
    from mlopsctl.promotion import current_plan

    plan = current_plan(state, model, env)
    live = plan.live_version
    other: str | None = None
    if canary:
        staging = state.stages.get("staging") if state and env != "staging" else None
        if state is not None and staging is not None and staging.version != live \
                and staging.version in state.versions:
            other = staging.version
        else:
            held = plan.slots.get(plan.idle_slot)
            other = held if held != live else None
    return (live[1:] if live else None), (other[1:] if other else None)


class Follower:
    """Keeps a ModelHolder on what the registry says is live in one environment."""

    def __init__(self, project: Project, holder: ModelHolder, metrics: Metrics,
                 interval: float = 0.5) -> None:
        self.project, self.holder, self.metrics = project, holder, metrics
        self.interval = interval
        self.watcher = RefWatcher(project.root, project.ws.git_dir)
        self.cache: OrderedDict[str, Loaded] = OrderedDict()
        self.failed: dict[str, tuple[float, Failure]] = {}  # version -> (when, why)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one step ------------------------------------------------------------------------

    def check(self, force: bool = False) -> None:
        """Look at the refs; when they changed (or a failed load is due a retry), re-read the
        registry and swap in what it wants served."""
        try:
            changed = self.watcher.changed()
        except MlopsError as exc:
            self._registry_error(exc.message)
            return
        retry = any(time.monotonic() - at >= RETRY_FAILED_S for at, _ in self.failed.values())
        if not (changed or retry or force):
            self.holder.checked_at = _now()
            return
        if changed:
            self.failed.clear()  # a new registry state deserves a fresh attempt
        try:
            state = reg.load(self.project.root).model(self.holder.model)
        except MlopsError as exc:
            self._registry_error(exc.message)
            return
        self.holder.follow_error = None
        self.holder.checked_at = _now()
        live_v, canary_v = wanted_versions(state, self.holder.model, self.holder.env,
                                           self.holder.canary_percent > 0)
        self.holder.wanted = {"live": live_v, "canary": canary_v}
        live = self._obtain(state, live_v) if live_v else None
        if live is None and live_v is not None:
            live = self.holder.routing.live  # the fallback: keep answering with the old one
        canary = self._obtain(state, canary_v) if canary_v else None
        failures = [self.failed[v][1] for v in (live_v, canary_v) if v in self.failed]
        self.holder.failure = failures[0] if failures else None
        before = self.holder.routing.live
        if self.holder.install(live, canary):
            if before is not None:
                self.metrics.switches.labels(self.holder.model).inc()
            log.info("%s %s: now serving %s (was %s)", self.holder.model, self.holder.env,
                     live.version if live else "nothing", before.version if before else "nothing")
        self.metrics.refresh()

    def _registry_error(self, message: str) -> None:
        if self.holder.follow_error != message:
            log.error("cannot read the registry: %s (still serving what is loaded)", message)
        self.holder.follow_error = message

    def _obtain(self, state: reg.ModelState | None, version: str) -> Loaded | None:
        if version in self.cache:
            self.cache.move_to_end(version)
            return self.cache[version]
        if version in self.failed and time.monotonic() - self.failed[version][0] < \
                RETRY_FAILED_S:
            return None
        try:
            loaded = self._load(state, version)
        except LoadFailed as exc:
            self._failed(version, str(exc))
            return None
        self.failed.pop(version, None)
        self.cache[version] = loaded
        while len(self.cache) > CACHE:
            self.cache.popitem(last=False)
        log.info("%s %s loaded (sha256 %s…)", self.holder.model, version, loaded.sha256[:12])
        return loaded

    def _load(self, state: reg.ModelState | None, version: str) -> Loaded:
        entry = state.versions.get(f"v{version}") if state else None
        if entry is None:
            raise LoadFailed("the registry has no such version")
        manifest = self.project.manifest_at(self.holder.model, entry.version, entry.commit)
        if manifest is None:
            raise LoadFailed("registered by another tool: no mlopsctl manifest")
        try:
            return load_from_registry(self.project, manifest)
        except LoadFailed:
            raise
        except MlopsError as exc:
            raise LoadFailed(exc.message) from None

    def _failed(self, version: str, reason: str) -> None:
        self.failed[version] = (time.monotonic(), Failure(version, reason))
        self.metrics.load_failures.labels(self.holder.model, version).inc()
        live = self.holder.routing.live
        log.error("%s %s could not be loaded: %s; %s", self.holder.model, version, reason,
                  f"still serving {live.version}" if live else "nothing is served")

    # --- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlopsctl-follow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the follower die: log and keep serving
                log.exception("following the registry failed; still serving what is loaded")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _now() -> str:
    from mlopsctl.serving.model import _now as now

    return now()
