"""Promotion, rollback, status and sync: the release services.

A promotion is checked (policy pin, role, order, gates), then prepared on the target (the new
version goes into the idle slot and is smoke-tested there), then recorded (the stage tag
``MODEL#ENV#N``, compare-and-swap), then made live (the target's pointer flips). Nothing flips
when the smoke test fails, and a crash between recording and flipping is repaired by ``sync``:
targets always follow the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from mlopsctl import manifests as mf
from mlopsctl import registry as reg
from mlopsctl.deploy import SlotPlan, Target, derive_slots
from mlopsctl.errors import CheckFailed, ConflictError, UsageError
from mlopsctl.gcpause import paused_gc
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.identity import Identity, require_identity
from mlopsctl.gitops.notes import missing_reports_hint
from mlopsctl.loading.sandbox import fd_path, run_worker, unnamed_file
from mlopsctl.progress import Reporter
from mlopsctl.project import Project

MAX_ATTEMPTS = 20
NOTE_FAILURES = "promotion_failures"


@dataclass
class ReleaseResult:
    model: str
    env: str
    version: str  # 'v1.2.0'
    previous: str | None
    slot: str | None
    tag: str | None  # None when nothing was recorded (already live)
    rollback: bool = False
    validation: dict[str, Any] = field(default_factory=dict)
    approvals: list[str] = field(default_factory=list)  # approvers counted for this release

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- pure planning ---------------------------------------------------------------------------


def assigned_versions(state: reg.ModelState | None, env: str) -> list[str]:
    return state.assigned(env) if state else []


def current_plan(state: reg.ModelState | None, model: str, env: str) -> SlotPlan:
    holder = state.stages.get(env) if state else None
    return derive_slots(model, env, assigned_versions(state, env),
                        holder.version if holder else None)


def live_history(state: reg.ModelState | None, env: str) -> list[str]:
    """The versions that were live in ``env``, as an undo stack (oldest first, the live one
    last): a promotion pushes its version, a rollback pops back to the version it named, an
    unassignment takes its version out. So `rollback` walks back through what was live before,
    instead of flipping forward again to the version it just left."""
    events = [e for e in (state.events if state else []) if e.stage == env and e.version
              and e.kind in (T.ASSIGN, T.UNASSIGN)]
    events.sort(key=lambda e: (e.timestamp, e.counter or 0))
    stack: list[str] = []
    for e in events:
        version = e.version or ""
        if e.kind == T.UNASSIGN:
            stack = [v for v in stack if v != version]
        elif e.data.get("rollback") is True and version in stack:
            del stack[stack.index(version) + 1:]
        elif not stack or stack[-1] != version:
            stack = [v for v in stack if v != version] + [version]
    return stack


def order_problem(state: reg.ModelState, version: str, environment: mf.Environment) -> str | None:
    """Why ``version`` may not enter an environment yet: it must have been in each required one."""
    for required in environment.requires:
        if version not in assigned_versions(state, required):
            return f"{state.name} {version} has not been promoted to {required} yet"
    return None


def report_is_fresh(report: dict[str, Any] | None, manifest: mf.VersionManifest,
                    policy_hash: str) -> bool:
    return bool(report and report.get("passed") is True
                and report.get("artifact_sha256") == manifest.artifact.sha256
                and report.get("policy_hash") == policy_hash)


def validation_summary(report: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: round(v["recomputed"], 4) for k, v in report.get("metrics", {}).items()}
    return {
        "passed": report.get("passed"),
        "validated_at": report.get("validated_at"),
        "compliance": round(report.get("compliance", {}).get("score", 0.0), 4),
        "metrics": metrics,
        "latency_p95_ms": round(report.get("latency", {}).get("p95_ms", 0.0), 3),
        "policy_hash": report.get("policy_hash"),
    }


# --- effects ---------------------------------------------------------------------------------


def target_for(project: Project, env: str) -> Target:
    environment = project.config.environments.get(env)
    kind = environment.target if environment else "local"
    if kind == "kubernetes":
        from mlopsctl.deploy.kubernetes import KubernetesTarget

        def lookup(model: str, version: str) -> mf.VersionManifest | None:
            registry = reg.load(project.root)
            state = registry.model(model)
            entry = state.versions.get(version) if state else None
            return project.manifest_at(model, version, entry.commit) if entry else None

        options = environment.target_options if environment else {}
        return KubernetesTarget(project.root, options, lookup)
    from mlopsctl.deploy.local import LocalTarget

    return LocalTarget.inside(project.root, project.config.deploy_root)


def _environment(project: Project, env: str) -> mf.Environment:
    T.check_name(env, "environment name")
    if env not in project.config.environments:
        raise UsageError(f"unknown environment '{env}'",
                         hint="environments: " + ", ".join(project.config.environments))
    return project.config.environments[env]


def _require_role(project: Project, actor: Identity, action: str, env: str) -> None:
    from mlopsctl.access import require

    require(project, actor.email, action, env)


def _smoke(project: Project, manifest: mf.VersionManifest, artifact: IO[bytes]) -> None:
    """Load the artifact in the sandboxed worker and predict a few holdout rows."""
    from mlopsctl.validation import trusted_types, worker_limits

    card = project.card(manifest.model)
    types, path = trusted_types(project)
    request: dict[str, Any] = {"mode": "smoke", "format": manifest.artifact.format, "rows": 5,
                               "trusted_types": types}
    if card and card.holdout and (project.root / card.holdout.path).is_file():
        request.update(holdout=str(project.root / card.holdout.path), target=card.holdout.target)
    result = run_worker(request, 300, worker_limits(project), artifact=artifact, sys_path=path)
    if not result.get("ok"):
        raise CheckFailed(f"smoke test of {manifest.model}@{manifest.version} failed: "
                          f"{result.get('error')}")


def _load_into_slot(project: Project, target: Target, plan: SlotPlan, slot: str,
                    manifest: mf.VersionManifest, smoke: bool, reporter: Reporter) -> None:
    from mlopsctl.artifacts import restore_into

    # The verified plaintext lives in an unnamed file until the target copies it into the slot:
    # a process killed midway leaves no decrypted model behind.
    with unnamed_file() as fh:
        restore_into(project, manifest, fh, reporter)  # sha256 verified
        if smoke:
            _smoke(project, manifest, fh)
        fh.seek(0)
        target.prepare(plan, slot, manifest, Path(fd_path(fh.fileno())))


def _record(project: Project, model: str, env: str, version: reg.VersionEntry, title: str,
            data: dict[str, Any], state: reg.ModelState | None) -> str:
    """Create ``model#env#N`` on the version's commit, ``state`` being the model as read under
    the lock; a lost race (a tag written by something else than mlopsctl) reads it again and
    takes the next counter."""
    from mlopsctl.gitops import refs
    from mlopsctl.signing import should_sign

    sign = should_sign(project.config, project.root)
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            state = reg.load(project.root).model(model)
        counter = state.next_counter if state else 1
        _after_newest_event(state, env)
        tag = T.format_tag(T.TagEvent(T.ASSIGN, model, stage=env, counter=counter))
        message = f"{title}\n\n{mf.dump_data({reg.DATA_KEY: data})}"
        try:
            refs.create_tag(project.root, tag, version.commit, message, sign=sign)
        except ConflictError:
            continue
        return tag
    raise ConflictError(f"could not record the event for {model} in {env}: counters kept "
                        "being taken", hint="run the command again")


def _after_newest_event(state: reg.ModelState | None, env: str) -> None:
    """Tag dates have one-second resolution and GTO orders a stage's events by date alone, so
    a second event for the stage within the same second could be read as the older one. Wait
    (under the lock, at most a second) until the clock has passed the stage's newest event."""
    import time

    events = [e.timestamp for e in state.events if e.stage == env] if state else []
    newest = max(events, default=0)
    wait = newest + 1 - time.time()
    if wait > 0:
        time.sleep(wait + 0.01)


def _activate(project: Project, target: Target, plan: SlotPlan) -> None:
    target.activate(plan)
    if getattr(target, "name", "") == "kubernetes":
        _commit_rendered(project, target, plan)


def _commit_rendered(project: Project, target: Any, plan: SlotPlan) -> None:
    from mlopsctl.gitops import refs

    path: Path = target.rendered_path(plan.env, plan.model)
    rel = path.relative_to(project.root).as_posix()
    content = path.read_bytes()
    from mlopsctl.gitops.git import GitFailed, git

    try:
        committed = git(project.root, "cat-file", "blob", f"HEAD:{rel}")
    except GitFailed:
        committed = None
    if committed == content:
        return
    head = refs.head_commit(project.root)
    refs.commit_files(project.root, {rel: content},
                      f"mlopsctl: render {plan.model} for {plan.env} ({plan.live_version})", head)
    refs.sync_worktree(project.root, {rel: content})


def _event_data(actor: Identity, env: str, version: str, previous: str | None, slot: str | None,
                policy_hash: str, event: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": mf.SCHEMA_VERSION, "event": event, "actor": str(actor),
        "environment": env, "version": version.removeprefix("v"),
        "previous_version": previous.removeprefix("v") if previous else None,
        "slot": slot, "policy_hash": policy_hash,
        "at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }
    data.update(extra)
    return data


def promote(project: Project, model: str, version: str | None, env: str,
            message: str = "", reporter: Reporter | None = None) -> ReleaseResult:
    from mlopsctl.artifacts import resolve
    from mlopsctl.fsio import file_lock
    from mlopsctl.validation import ValidateRequest, latest_report, validate

    reporter = reporter or Reporter()
    T.check_name(model)
    environment = _environment(project, env)
    policy_hash = project.require_policy_pin()
    actor = require_identity(project.root)
    _require_role(project, actor, "promote", env)
    ref = f"{model}@{version}" if version else f"{model}@latest"
    registry = reg.load(project.root)
    found = resolve(project, registry, ref)
    entry, manifest = found.entry, found.manifest
    from mlopsctl.trust import trusted_registry

    # the order check counts signed events only (the same registry when signing is off)
    state = trusted_registry(project, registry=registry).model(model)
    assert state is not None
    problem = order_problem(state, entry.version, environment)
    if problem:
        raise CheckFailed(problem, hint=f"mlopsctl promote {model} {entry.number} --to "
                          f"{environment.requires[0]}")
    holder = state.stages.get(env)
    if holder and holder.version == entry.version:
        sync(project, model=model, env=env)
        return ReleaseResult(model, env, entry.version, entry.version,
                             current_plan(state, model, env).live_slot, None)
    from mlopsctl import approvals

    approvers = approvals.require(project, entry.commit, manifest, env, environment, actor.email)

    from mlopsctl.trust import report_problem

    report = latest_report(project, entry.commit, env)
    distrust = report_problem(project, report, env) if report else None
    if distrust:
        reporter.note(f"not using the stored report: {distrust}")
    if distrust or not report_is_fresh(report, manifest, policy_hash):
        card = project.card(model)
        if card is None or card.holdout is None:
            fetch = missing_reports_hint(project.root)
            raise CheckFailed(
                f"{model} {entry.version} has no passing validation for {env} with this artifact "
                "and policy" + (f" ({fetch})" if fetch else ""),
                hint=("mlopsctl pull, then retry; or " if fetch else "")
                + f"mlopsctl validate {model}@{entry.number} --env {env} "
                "--data HOLDOUT --target COLUMN")
        reporter.note(f"validating {model}@{entry.number} for {env} (no fresh passing report)")
        report = validate(project, ValidateRequest(ref=f"{model}@{entry.number}", env=env),
                          reporter)
        if not report.get("passed"):
            from mlopsctl.policy import failure_hint, failure_line

            raise CheckFailed(f"{model}@{entry.number} {failure_line(report)}",
                              hint=failure_hint(report)
                              or f"mlopsctl validate {model}@{entry.number} --env {env}")
        distrust = report_problem(project, report, env)
        if distrust:
            raise CheckFailed(distrust, hint="signing is required: validate with a key in the "
                              "allowed-signers file and a role granting validate")
    assert report is not None
    summary = validation_summary(report)

    target = target_for(project, env)
    with file_lock(project.ws.lock_path):
        state = reg.load(project.root).model(model)
        plan = current_plan(state, model, env)
        previous = plan.live_version
        if previous == entry.version:  # made live by another process while we waited
            return ReleaseResult(model, env, entry.version, previous, plan.live_slot, None,
                                 validation=summary)
        slot_before = plan.slot_of(entry.version)
        slot = plan.place(entry.version)
        if slot_before is None:
            try:
                _load_into_slot(project, target, plan, slot, manifest, smoke=True,
                                reporter=reporter)
            except CheckFailed as exc:
                _record_failure(project, entry.commit, env, actor, exc.message)
                raise
        title = f"Promote {model} {entry.version} to {env}" + (f": {message}" if message else "")
        data = _event_data(actor, env, entry.version, previous, slot, policy_hash, "promote",
                           validation=summary, message=message or None,
                           approvals=approvers or None)
        tag = _record(project, model, env, entry, title, data, state)
        _activate(project, target, plan)
    return ReleaseResult(model, env, entry.version, previous, slot, tag, validation=summary,
                         approvals=approvers)


def _record_failure(project: Project, commit: str, env: str, actor: Identity, why: str) -> None:
    from mlopsctl.gitops.notes import merge_note

    merge_note(project.root, commit, NOTE_FAILURES, env, {
        "failed_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "actor": str(actor), "reason": why})


def rollback(project: Project, model: str, env: str, to: str | None = None,
             message: str = "", reporter: Reporter | None = None) -> ReleaseResult:
    from mlopsctl.artifacts import resolve
    from mlopsctl.fsio import file_lock

    reporter = reporter or Reporter()
    T.check_name(model)
    _environment(project, env)
    policy_hash = project.require_policy_pin()
    actor = require_identity(project.root)
    _require_role(project, actor, "rollback", env)
    target = target_for(project, env)
    with file_lock(project.ws.lock_path):
        registry = reg.load(project.root)  # one read, under the lock
        state = registry.model(model)
        if state is None:
            raise UsageError(f"unknown model '{model}'", hint="mlopsctl show")
        plan = current_plan(state, model, env)
        live = plan.live_version
        if to is None:
            stack = live_history(state, env)
            wanted = stack[-2] if len(stack) >= 2 and stack[-1] == live else None
            if wanted is None:
                raise CheckFailed(f"{model} has no earlier version in {env} to roll back to "
                                  "(rollback walks back through what was live before)",
                                  hint=f"mlopsctl history {model}; to go forward again: "
                                  f"mlopsctl promote {model} VERSION --to {env}")
        else:
            wanted = resolve(project, registry, f"{model}@{to}").entry.version
            if wanted not in assigned_versions(state, env):
                raise CheckFailed(f"{model} {wanted} was never live in {env}: that is a "
                                  "promotion, not a rollback",
                                  hint=f"mlopsctl promote {model} {wanted[1:]} --to {env}")
        if wanted == live:
            return ReleaseResult(model, env, wanted, live, plan.live_slot, None, rollback=True)
        found = resolve(project, registry, f"{model}@{wanted[1:]}")
        slot_before = plan.slot_of(wanted)
        slot = plan.place(wanted)
        if slot_before is None:
            _load_into_slot(project, target, plan, slot, found.manifest, smoke=True,
                            reporter=reporter)
        title = f"Roll back {model} in {env} to {wanted} (from {live})" + (
            f": {message}" if message else "")
        data = _event_data(actor, env, wanted, live, slot, policy_hash, "rollback",
                           rollback=True, message=message or None)
        tag = _record(project, model, env, found.entry, title, data, state)
        _activate(project, target, plan)
    return ReleaseResult(model, env, wanted, live, slot, tag, rollback=True)


# --- status and sync -------------------------------------------------------------------------


def _pairs(project: Project, registry: reg.Registry, model: str | None,
           env: str | None) -> list[tuple[str, str]]:
    envs = [env] if env else list(project.config.environments)
    if env is None:
        envs += [s for s in registry.stage_names if s not in envs]
    elif env not in project.config.environments and env not in registry.stage_names:
        T.check_name(env, "environment name")
        known = list(project.config.environments)
        known += [s for s in registry.stage_names if s not in known]
        raise UsageError(f"unknown environment '{env}'", hint="environments: " + ", ".join(known))
    models = [model] if model else list(registry.models)
    return [(m, e) for m in models for e in envs]


def status(project: Project, model: str | None = None, env: str | None = None
           ) -> list[dict[str, Any]]:
    from mlopsctl.trust import trusted_registry

    registry = trusted_registry(project)  # under signing: required, signed events only
    if model and registry.model(model) is None:
        raise UsageError(f"unknown model '{model}'", hint="mlopsctl show")
    with paused_gc():  # every model folded: many objects, no cycles
        return _status_rows(project, registry, model, env)


def _status_rows(project: Project, registry: reg.Registry, model: str | None, env: str | None
                 ) -> list[dict[str, Any]]:
    rows = []
    for m, e in _pairs(project, registry, model, env):
        state = registry.model(m)
        plan = current_plan(state, m, e)
        if plan.live_version is None and not any(plan.slots.values()):
            continue
        holder = state.stages.get(e) if state else None
        target = target_for(project, e)
        actual = target.state(e, m)
        in_sync = actual.live_slot == plan.live_slot and all(
            actual.slots[s].version == v for s, v in plan.slots.items())
        healthy = all(actual.slots[s].healthy for s, v in plan.slots.items() if v)
        # The local target is per machine: a clone that never deployed holds nothing at all,
        # which is not drift (`sync` deploys it here).
        here = target.name != "local" or actual.live_slot is not None or any(
            d.version for d in actual.slots.values())
        data = holder.data if holder else {}
        rows.append({
            "model": m, "environment": e, "live": plan.live_version, "live_slot": plan.live_slot,
            "slots": plan.slots,
            "since": holder.date_iso if holder else None,
            "by": data.get("actor") or (f"{holder.author} <{holder.author_email}>"
                                        if holder else None),
            "event": holder.tag if holder else None,
            "rollback": bool(data.get("rollback")),
            "validation": data.get("validation"),
            "approvals": data.get("approvals") or [],
            "target": target.name,
            "in_sync": in_sync, "healthy": healthy, "deployed_here": here,
            "deployed": {s: {"version": d.version, "healthy": d.healthy, "detail": d.detail}
                         for s, d in actual.slots.items()},
        })
    return rows


def sync(project: Project, model: str | None = None, env: str | None = None,
         reporter: Reporter | None = None) -> list[str]:
    """Make targets match the registry; returns what was done (empty when already in sync)."""
    from mlopsctl.artifacts import resolve
    from mlopsctl.fsio import file_lock

    reporter = reporter or Reporter()
    actions: list[str] = []
    from mlopsctl.trust import trusted_registry

    with file_lock(project.ws.lock_path):
        registry = trusted_registry(project)  # never deploy an unsigned or forged event
        for m, e in _pairs(project, registry, model, env):
            state = registry.model(m)
            plan = current_plan(state, m, e)
            if plan.live_version is None and not any(plan.slots.values()):
                continue
            target = target_for(project, e)
            sweep = getattr(target, "sweep", None)
            if sweep is not None:
                actions += [f"{m} {e}: removed the interrupted fill {name}"
                            for name in sweep(e, m)]
            actual = target.state(e, m)
            for slot, version in plan.slots.items():
                clear = getattr(target, "clear", None)
                if version is None and actual.slots[slot].version and clear is not None \
                        and actual.live_slot != slot:
                    clear(e, m, slot)  # filled by a promotion that never got recorded
                    actions.append(f"{m} {e}: emptied {slot} "
                                   f"(held {actual.slots[slot].version}, never released)")
                    continue
                if version is None or (actual.slots[slot].version == version
                                       and actual.slots[slot].healthy):
                    continue
                if actual.live_slot == slot:  # never rewrite what is live: flip away first
                    target.activate(SlotPlan(m, e, None, None, plan.slots))
                found = resolve(project, registry, f"{m}@{version[1:]}")
                _load_into_slot(project, target, plan, slot, found.manifest, smoke=False,
                                reporter=reporter)
                actions.append(f"{m} {e}: loaded {version} into {slot}")
            if target.state(e, m).live_slot != plan.live_slot or target.name == "kubernetes":
                before = target.state(e, m).live_slot
                _activate(project, target, plan)
                if before != plan.live_slot:
                    actions.append(f"{m} {e}: live slot -> {plan.live_slot} "
                                   f"({plan.live_version})")
    return actions
