"""The lifecycle events GTO users expect: deprecate a model, deregister a version, unassign an
environment. Each is a GTO tag (``name@deprecated``, ``name@v1.2.3!#N``, ``name#env!#N``) with
the structured block other events carry, checked against ``.mlops/access.yaml`` and written
under the repository lock, so ``gto`` and ``mlopsctl history`` read it the same way.

An unassignment changes what an environment serves, so the deploy targets follow at once (the
same idempotent ``sync`` that repairs a crashed promotion). GTO's rule applies: when the
unassigned version held the stage, an older version whose assignment is still active holds it
again; ``everything=True`` unassigns those too and leaves the environment empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlopsctl import manifests as mf
from mlopsctl import registry as reg
from mlopsctl.access import require
from mlopsctl.errors import CheckFailed, ConflictError, UsageError
from mlopsctl.fsio import file_lock
from mlopsctl.gitops import refs
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.identity import Identity, require_identity
from mlopsctl.progress import Reporter
from mlopsctl.project import Project

MAX_ATTEMPTS = 20


@dataclass
class LifecycleResult:
    model: str
    event: str  # deprecate / deregister / unassign
    tags: list[str] = field(default_factory=list)  # empty when there was nothing to do
    version: str | None = None  # 'v1.2.0' (deregister), or the versions unassigned
    unassigned: list[str] = field(default_factory=list)
    env: str | None = None
    live: str | None = None  # unassign: what the environment serves now
    still_live: dict[str, str] = field(default_factory=dict)  # deprecate: stages still held
    actions: list[str] = field(default_factory=list)  # what sync did to the targets

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- pure ------------------------------------------------------------------------------------


def active_assignments(state: reg.ModelState, env: str) -> list[str]:
    """Registered versions whose newest event in ``env`` is an assignment, newest first: the
    holder, then the versions that would hold the stage if it were unassigned (GTO's fold)."""
    per_version: dict[str, list[reg.Event]] = {}
    for event in state.events:  # newest first
        if event.stage == env and event.version and event.kind in (T.ASSIGN, T.UNASSIGN):
            per_version.setdefault(event.version, []).append(event)
    newest: list[reg.Event] = []
    for version, events in per_version.items():
        entry = state.versions.get(version)
        if entry is None or entry.deregistered:
            continue
        # Same second: GTO lists assignments before unassignments, so the unassignment wins.
        ordered = reg.desc([e for e in events if e.kind == T.ASSIGN] +
                           [e for e in events if e.kind == T.UNASSIGN])
        if ordered[0].kind == T.ASSIGN:
            newest.append(ordered[0])
    holder = state.stages.get(env)
    out = [e.version for e in sorted(newest, key=lambda e: e.timestamp, reverse=True)
           if e.version]
    if holder is not None and holder.version in out:  # the fold's tie-breaks decide the holder
        out.remove(holder.version)
        out.insert(0, holder.version)
    return out


def _data(actor: Identity, event: str, message: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": mf.SCHEMA_VERSION, "event": event, "actor": str(actor),
        "at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }
    data.update({k: v for k, v in extra.items() if v is not None})
    data["message"] = message or None
    return data


# --- effects ---------------------------------------------------------------------------------


def _state(project: Project, model: str) -> reg.ModelState:
    state = reg.load(project.root).model(model)
    if state is None:
        raise UsageError(f"unknown model '{model}'", hint="mlopsctl show")
    return state


def _after_newest(project: Project, model: str) -> None:
    """Tag dates have one-second resolution, and GTO sorts a model's events by date alone,
    with deprecations listed first: a deprecation in the same second as the model's newest
    event (or its commit) would read as older. Wait, at most a second, until the clock has
    passed it."""
    newest = 0
    for rec in refs.read_tags(project.root):
        parsed = T.parse_tag(rec.name)
        if parsed is not None and parsed.model == model:
            newest = max(newest, rec.timestamp, rec.commit_time)
    wait = newest + 1 - time.time()
    if wait > 0:
        time.sleep(wait + 0.01)


def _create(project: Project, model: str, commit: str, title: str, data: dict[str, Any],
            name_for: Any) -> str:
    """Create the tag ``name_for(state)`` on ``commit``; a lost race recomputes the counter."""
    from mlopsctl.signing import should_sign

    sign = should_sign(project.config, project.root)
    message = f"{title}\n\n{mf.dump_data({reg.DATA_KEY: data})}"
    for _ in range(MAX_ATTEMPTS):
        tag = name_for(_state(project, model))
        try:
            refs.create_tag(project.root, tag, commit, message, sign=sign)
        except ConflictError:
            continue
        return str(tag)
    raise ConflictError(f"could not record the event for {model}: counters kept being taken",
                        hint="run the command again")


def _actor(project: Project, action: str, env: str | None = None) -> Identity:
    actor = require_identity(project.root)
    require(project, actor.email, action, env)
    return actor


def deprecate(project: Project, model: str, message: str = "") -> LifecycleResult:
    """``name@deprecated`` (``#N`` once that name is taken) on the commit of the model's newest
    event, as ``gto deprecate`` places it. Already deprecated: nothing to do."""
    T.check_name(model)
    _state(project, model)
    actor = _actor(project, "deprecate")
    with file_lock(project.ws.lock_path):
        state = _state(project, model)
        still = {env: ev.version for env, ev in sorted(state.stages.items()) if ev.version}
        result = LifecycleResult(model, "deprecate", still_live=still)
        if state.deprecated:
            return result
        _after_newest(project, model)
        taken = set(refs_names(project))
        data = _data(actor, "deprecate", message)

        def name_for(s: reg.ModelState) -> str:
            plain = T.format_tag(T.TagEvent(T.DEPRECATE, model))
            if plain not in taken:
                taken.add(plain)  # a lost race for it falls through to the counted form
                return plain
            return T.format_tag(T.TagEvent(T.DEPRECATE, model, counter=s.next_counter))

        title = f"Deprecate {model}" + (f": {message}" if message else "")
        result.tags.append(_create(project, model, state.events[0].commit, title, data,
                                   name_for))
    return result


def refs_names(project: Project) -> list[str]:
    return [rec.name for rec in refs.read_tags(project.root)]


def deregister(project: Project, model: str, version: str, message: str = "") -> LifecycleResult:
    """``name@vX.Y.Z!#N`` on the version's commit. A version an environment serves is refused:
    unassign it first, so no target is left serving a version the registry disowned."""
    from mlopsctl import semver

    T.check_name(model)
    if not semver.is_valid(version.removeprefix("v")):
        raise UsageError(f"'{version}' is not a version", hint=f"mlopsctl show {model}")
    wanted = semver.parse(version.removeprefix("v")).tag
    _state(project, model)
    actor = _actor(project, "deregister")
    with file_lock(project.ws.lock_path):
        state = _state(project, model)
        entry = state.versions.get(wanted)
        if entry is None:
            raise UsageError(f"model '{model}' has no version {wanted[1:]}",
                             hint=f"mlopsctl show {model}")
        result = LifecycleResult(model, "deregister", version=wanted)
        if entry.deregistered:
            return result
        serving = [env for env in sorted(state.stages) if wanted in
                   active_assignments(state, env)]
        if serving:
            raise CheckFailed(
                f"{model} {wanted} is assigned to {', '.join(serving)}: deregistering it would "
                "leave a deployed version unregistered",
                hint="; ".join(f"mlopsctl unassign {model} --env {env} --version {wanted[1:]}"
                               for env in serving) + ", then deregister")
        data = _data(actor, "deregister", message, version=wanted[1:])
        title = f"Deregister {model} {wanted}" + (f": {message}" if message else "")

        def name_for(s: reg.ModelState) -> str:
            return T.format_tag(T.TagEvent(T.DEREGISTER, model, wanted, counter=s.next_counter))

        result.tags.append(_create(project, model, entry.commit, title, data, name_for))
    return result


def unassign(project: Project, model: str, env: str, version: str | None = None,
             everything: bool = False, message: str = "",
             reporter: Reporter | None = None) -> LifecycleResult:
    """``name#env!#N`` on the commit of the version leaving ``env`` (default: the one it
    serves; ``everything``: every version still assigned there), then the targets follow."""
    from mlopsctl import semver
    from mlopsctl.promotion import sync

    T.check_name(model)
    T.check_name(env, "environment name")
    if version is not None and everything:
        raise UsageError("give either --version or --all, not both")
    if version is not None and not semver.is_valid(version.removeprefix("v")):
        raise UsageError(f"'{version}' is not a version", hint=f"mlopsctl show {model}")
    state = _state(project, model)
    known = set(project.config.environments) | set(reg.load(project.root).stage_names)
    if env not in known:
        raise UsageError(f"unknown environment '{env}'", hint="environments: "
                         + ", ".join(sorted(known)))
    actor = _actor(project, "unassign", env)
    result = LifecycleResult(model, "unassign", env=env)
    with file_lock(project.ws.lock_path):
        state = _state(project, model)
        active = active_assignments(state, env)
        if version is not None:
            wanted = semver.parse(version.removeprefix("v")).tag
            if wanted not in active:
                raise UsageError(f"{model} {wanted} is not assigned to {env}",
                                 hint=f"mlopsctl show {model}")
            leaving = [wanted]
        else:
            leaving = active if everything else active[:1]
        previous = state.stages[env].version if env in state.stages else None
        for gone in leaving:
            entry = state.versions[gone]
            data = _data(actor, "unassign", message, environment=env, version=gone[1:],
                         previous_version=previous[1:] if previous else None)
            title = f"Unassign {model} {gone} from {env}" + (f": {message}" if message else "")

            def name_for(s: reg.ModelState) -> str:
                return T.format_tag(T.TagEvent(T.UNASSIGN, model, stage=env,
                                               counter=s.next_counter))

            result.tags.append(_create(project, model, entry.commit, title, data, name_for))
            result.unassigned.append(gone)
            state = _state(project, model)
        holder = state.stages.get(env)
        result.live = holder.version if holder else None
    if result.tags:
        result.actions = sync(project, model=model, env=env, reporter=reporter)
    return result

