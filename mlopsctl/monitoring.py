"""What ``mlopsctl monitor`` computes: the dashboard document, alerts, and cheap live refresh.

Nothing here knows a screen: the Textual app (``mlopsctl.tui``), the headless modes
(``monitor --once --json``, ``--watch``) and the Python API (``dashboard``) all read the same
``Monitor``.

A ``Monitor`` keeps the registry in memory and follows it. ``poll()`` asks the refs' state
(``gitops.refstate``: a dozen ``stat`` calls) whether anything changed; when it did, only the
changed tags and notes are read, only the models they touch are folded again (each model's
state depends on its own tags alone), and the models whose rows changed are returned, so a
front end updates only those. Live metrics come from each environment's Prometheus endpoint
(``metrics_url`` in config), scraped with a short timeout by ``scrape()``, which a front end
runs off its UI thread.

Alerts:

- degradation of the live version against its validated baseline (the latest validation report
  for that environment, else the summary recorded in its stage tag): accuracy (relative drop),
  latency p95 (relative rise) and error rate (the share of failed requests: the validation run
  had none, so the share itself is the degradation), at the thresholds of
  ``alerts.degradation`` (default 5 %, 10 %, 15 % -> warning, critical, emergency);
- targets missed (``performance_targets``): response time (live p95), availability (1 - error
  rate), model accuracy (live, else validated) and compliance (the live version's report): critical;
- a metrics source that is down: critical.

``auto_rollback: true`` in an environment's config rolls an emergency back through
``promotion.rollback`` (role-checked and recorded like ``mlopsctl rollback``), once per live
version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlopsctl import livemetrics as lm
from mlopsctl import manifests as mf
from mlopsctl import registry as reg
from mlopsctl.errors import MlopsError
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.refstate import RefsDigest, RefsReader
from mlopsctl.gitops.tagindex import needs_commit_times, read_objects
from mlopsctl.progress import Reporter
from mlopsctl.project import Project
from mlopsctl.views import EVENT_NAMES
from mlopsctl.workspace import NOTES_REF

SCHEMA = 1
LEVELS = ("warning", "critical", "emergency")
RECENT_EVENTS = 30
SCRAPE_TIMEOUT = 1.0


def rank(level: str | None) -> int:
    """0 for no alert, then 1..3 for warning, critical, emergency."""
    return LEVELS.index(level) + 1 if level in LEVELS else 0


def worst(levels: list[str]) -> str | None:
    return max(levels, key=rank) if levels else None


@dataclass(frozen=True)
class Alert:
    level: str
    kind: str  # degradation | target | source | rollback
    metric: str
    message: str
    model: str | None = None
    env: str | None = None
    version: str | None = None
    value: float | None = None
    baseline: float | None = None
    threshold: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Baseline:
    """What the live version was validated at, for one environment."""

    status: str | None = None  # passed | failed | error | refused | None (no report)
    accuracy: float | None = None
    latency_p95_ms: float | None = None
    compliance: float | None = None
    validated_at: str | None = None
    stale: bool = False  # validated under another policy than the pinned one

    @classmethod
    def of(cls, report: dict[str, Any] | None, summary: dict[str, Any] | None,
           policy_hash: str) -> Baseline:
        if report:
            metrics = report.get("metrics") or {}
            acc = metrics.get("accuracy") or {}
            return cls(status=report.get("status") or ("passed" if report.get("passed")
                                                        else "failed"),
                       accuracy=_num(acc.get("recomputed")),
                       latency_p95_ms=_num((report.get("latency") or {}).get("p95_ms")),
                       compliance=_num((report.get("compliance") or {}).get("score")),
                       validated_at=report.get("validated_at"),
                       stale=bool(report.get("policy_hash")) and
                       report.get("policy_hash") != policy_hash)
        if summary:
            return cls(status="passed" if summary.get("passed") else "failed",
                       accuracy=_num((summary.get("metrics") or {}).get("accuracy")),
                       latency_p95_ms=_num(summary.get("latency_p95_ms")),
                       compliance=_num(summary.get("compliance")),
                       validated_at=summary.get("validated_at"))
        return cls()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


# --- alerts (pure) ---------------------------------------------------------------------------


def degradation_level(change: float, thresholds: list[float]) -> tuple[str, float] | None:
    """The level (and its threshold) a relative degradation reaches, or None."""
    found = None
    for level, threshold in zip(LEVELS, sorted(thresholds)[:3], strict=False):
        if change >= threshold - 1e-12:
            found = (level, threshold)
    return found


def degradation_alerts(model: str, env: str, version: str, base: Baseline,
                       live: lm.LiveStats | None, thresholds: list[float]) -> list[Alert]:
    if live is None or not live.up:
        return []
    out = []
    checks: list[tuple[str, float | None, float | None, str]] = []
    if live.accuracy is not None and base.accuracy:
        checks.append(("accuracy", (base.accuracy - live.accuracy) / base.accuracy,
                       live.accuracy, f"accuracy {live.accuracy:.3f} vs validated "
                       f"{base.accuracy:.3f}"))
    if live.latency_p95_ms is not None and base.latency_p95_ms:
        checks.append(("latency_p95_ms",
                       (live.latency_p95_ms - base.latency_p95_ms) / base.latency_p95_ms,
                       live.latency_p95_ms, f"p95 {live.latency_p95_ms:.1f} ms vs validated "
                       f"{base.latency_p95_ms:.1f} ms"))
    if live.error_rate is not None:
        checks.append(("error_rate", live.error_rate, live.error_rate,
                       f"error rate {live.error_rate:.1%}"))
    for metric, change, value, text in checks:
        if change is None:
            continue
        hit = degradation_level(change, thresholds)
        if hit:
            level, threshold = hit
            baseline = {"accuracy": base.accuracy, "latency_p95_ms": base.latency_p95_ms,
                        "error_rate": 0.0}[metric]
            worse = "" if metric == "error_rate" else f"{change:.1%} worse, "
            out.append(Alert(level, "degradation", metric,
                             f"{model} {version} in {env}: {text} ({worse}"
                             f"{level} at {threshold:.0%})",
                             model, env, version, value, baseline, threshold))
    return out


def target_alerts(model: str, env: str, version: str, base: Baseline,
                  live: lm.LiveStats | None, targets: mf.PerformanceTargets) -> list[Alert]:
    out = []
    where = f"{model} {version} in {env}"
    up = live is not None and live.up
    if up and live is not None and live.latency_p95_ms is not None \
            and live.latency_p95_ms > targets.response_time_ms:
        out.append(Alert("critical", "target", "response_time_ms",
                         f"{where}: p95 {live.latency_p95_ms:.0f} ms misses the "
                         f"{targets.response_time_ms:.0f} ms target",
                         model, env, version, live.latency_p95_ms, None,
                         targets.response_time_ms))
    if up and live is not None and live.error_rate is not None \
            and 1 - live.error_rate < targets.availability:
        out.append(Alert("critical", "target", "availability",
                         f"{where}: availability {1 - live.error_rate:.2%} misses the "
                         f"{targets.availability:.2%} target",
                         model, env, version, 1 - live.error_rate, None, targets.availability))
    accuracy = live.accuracy if up and live is not None and live.accuracy is not None \
        else base.accuracy
    if accuracy is not None and accuracy < targets.model_accuracy:
        out.append(Alert("critical", "target", "model_accuracy",
                         f"{where}: accuracy {accuracy:.3f} misses the "
                         f"{targets.model_accuracy:.2f} target",
                         model, env, version, accuracy, None, targets.model_accuracy))
    if base.compliance is not None and base.compliance < targets.constitutional_compliance:
        out.append(Alert("critical", "target", "compliance",
                         f"{where}: compliance {base.compliance:.0%} misses the "
                         f"{targets.constitutional_compliance:.0%} target",
                         model, env, version, base.compliance, None,
                         targets.constitutional_compliance))
    return out


# --- the notes -----------------------------------------------------------------------------


class NotesIndex:
    """The validation notes (``refs/notes/mlops``), re-read only where a note's blob changed."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.oid: str | None = None
        self.blobs: dict[str, str] = {}  # commit -> note blob
        self.docs: dict[str, dict[str, Any]] = {}  # commit -> parsed note

    def update(self, oid: str | None, git_dir: Any) -> set[str]:
        """Commits whose note changed since the last call."""
        if oid == self.oid:
            return set()
        self.oid = oid
        blobs: dict[str, str] = {}
        if oid:
            from mlopsctl.gitops.git import GitFailed, git

            try:
                out = git(self.root, "notes", f"--ref={NOTES_REF}", "list").decode()
            except GitFailed:
                out = ""
            for line in out.splitlines():
                blob, _, commit = line.partition(" ")
                if commit:
                    blobs[commit] = blob
        changed = {c for c in set(blobs) | set(self.blobs) if blobs.get(c) != self.blobs.get(c)}
        wanted = {blobs[c] for c in changed if c in blobs}
        objects = read_objects(self.root, git_dir, wanted)
        for commit in changed:
            self.docs.pop(commit, None)
            note = blobs.get(commit)
            if note and note in objects:
                try:
                    doc = json.loads(objects[note][1])
                except ValueError:
                    doc = {}
                self.docs[commit] = doc if isinstance(doc, dict) else {}
        self.blobs = blobs
        return changed

    def report(self, commit: str, env: str, model: str | None = None) -> dict[str, Any] | None:
        """The latest validation of ``commit`` for ``env``; with ``model``, only that model's
        (two models' versions can share a commit, and the note is the commit's)."""
        found = (self.docs.get(commit) or {}).get("validations", {}).get(env)
        if not isinstance(found, dict):
            return None
        if model is not None and found.get("model") not in (None, model):
            return None
        return found


# --- the monitor ---------------------------------------------------------------------------


@dataclass
class Changes:
    models: set[str] = field(default_factory=set)  # rows to redraw (added, changed, removed)
    events: bool = False  # the audit log changed
    config: bool = False

    def __bool__(self) -> bool:
        return bool(self.models or self.events or self.config)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).replace(microsecond=0).isoformat() \
        .replace("+00:00", "Z")


def event_name(event: reg.Event) -> str:
    data = event.data
    if data.get("rollback"):
        return "rollback"
    kind = data.get("event")
    return str(kind) if kind else EVENT_NAMES.get(event.kind, event.kind)


def age(seconds: float) -> str:
    """A coarse age (it changes rarely, so the table's cell rarely needs redrawing)."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


class Monitor:
    """Registry, deployments, live metrics and alerts of one project, kept up to date."""

    def __init__(self, project: Project, scrape_timeout: float = SCRAPE_TIMEOUT,
                 clock: Callable[[], float] = time.time, keep: int = 120) -> None:
        self.project = project
        self.clock = clock
        self.scrape_timeout = scrape_timeout
        ws = project.ws
        # The first read starts from the tag index's records (not every tag object again).
        self.reader = RefsReader(project.root, ws.git_dir,
                                 watched=(ws.config_path, ws.policy_path, ws.access_path),
                                 seed=lambda: reg.indexed_records(project.root))
        self.notes = NotesIndex(project.root)
        self.states: dict[str, reg.ModelState] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.deps: dict[str, dict[str, dict[str, Any]]] = {}  # model -> env -> deployment
        self.alerts_version = 0  # bumped whenever any model's alerts change
        self._environments: list[str] = []
        self.static_alerts: dict[str, list[Alert]] = {}  # per model: targets from validation
        self.live_alerts: dict[str, list[Alert]] = {}  # per model: from live metrics
        self.events: list[reg.Event] = []
        self.live: dict[str, lm.LiveHistory] = {}
        self.rollbacks: list[dict[str, Any]] = []
        self.config_error: str | None = None
        self.policy_drift: str | None = None
        self._rolled: set[tuple[str, str, str]] = set()
        self._digest: RefsDigest | None = None
        self._names: dict[str, set[str]] = {}  # model -> its tag names
        self._model_of: dict[str, str | None] = {}  # tag name -> model
        self._commits: dict[str, set[str]] = {}  # commit -> models with a version there
        self._policy_hash = project.config.constitutional_hash
        self._config_bytes: list[bytes] = []

    # --- reading ---------------------------------------------------------------------------

    def poll(self) -> Changes:
        """Cheap when nothing changed (stat calls); else re-reads only what changed."""
        digest = self.reader.digest()
        if digest == self._digest:
            return Changes()
        first = self._digest is None
        changes = Changes()
        prev = self._digest
        if prev is None or digest.files != prev.files or prev.files_racy:
            changes.config = self._reload_config() or first
        self._digest = digest
        listing = self.reader.listing()
        changed_tags = self.reader.update(listing)
        touched = self._regroup(changed_tags)
        for model in touched:
            self._refold(model)
        changed_commits = self.notes.update(listing.notes, self.project.ws.git_dir)
        for commit in changed_commits:
            touched |= self._commits.get(commit, set())
        if changes.config:
            touched |= set(self.states)
        if changes.config:
            self._collect_environments()
        else:  # a new stage adds a column; a vanished one waits for refresh() or config
            for model in touched:
                state = self.states.get(model)
                for stage in state.stages if state else ():
                    if stage not in self._environments:
                        self._environments.append(stage)
        for model in touched:
            self._rederive(model)
        if changed_tags:
            self._merge_events(touched)
            changes.events = bool(changed_tags)
        changes.models = touched
        return changes

    def refresh(self) -> Changes:
        """Forget the change detector's memory and re-derive every row (deploy targets too)."""
        self._digest = None
        changes = self.poll()
        for model in list(self.states):
            self._rederive(model)
        changes.models |= set(self.states)
        return changes

    def _reload_config(self) -> bool:
        """Re-read config (and the policy pin's state) when their bytes changed."""
        ws = self.project.ws
        seen = []
        for path in (ws.config_path, ws.policy_path, ws.access_path):
            try:
                seen.append(path.read_bytes())
            except OSError:
                seen.append(b"")
        if seen == self._config_bytes:
            return False
        self._config_bytes = seen
        try:
            config = mf.load(ws.config_path, mf.Config, ws.rel(ws.config_path))
        except MlopsError as exc:
            self.config_error = exc.message
            return False
        self.config_error = None
        self.project.config = config
        self._policy_hash = config.constitutional_hash
        self.policy_drift = ws.quick_policy_drift()
        for env in list(self.live):
            if self.metrics_url(env) != self.live[env].url:
                del self.live[env]
        return True

    def _regroup(self, names: set[str]) -> set[str]:
        touched: set[str] = set()
        for name in names:
            old = self._model_of.pop(name, None)
            if old is not None:
                self._names.get(old, set()).discard(name)
                touched.add(old)
            if name not in self.reader:
                continue
            parsed = T.parse_tag(name)
            model = parsed.model if parsed else None
            self._model_of[name] = model
            if model is not None:
                self._names.setdefault(model, set()).add(name)
                touched.add(model)
        return touched

    def _refold(self, model: str) -> None:
        records = [r for n in self._names.get(model, ()) if (r := self.reader.get(n))]
        if needs_commit_times(records) and any(r.annotated and not r.commit_time
                                               for r in records):
            # records from the tag index lack the commit dates this model's fold now needs
            # (a deprecation arrived): the index reads them
            state = reg.load(self.project.root).model(model)
        else:
            state = reg.build(records).models.get(model) if records else None
        old = self.states.pop(model, None)
        if old is not None:
            for entry in old.versions.values():
                self._commits.get(entry.commit, set()).discard(model)
            for ev in old.stages.values():
                self._commits.get(ev.commit, set()).discard(model)
        if state is None:
            return
        self.states[model] = state
        for entry in state.versions.values():
            self._commits.setdefault(entry.commit, set()).add(model)
        for ev in state.stages.values():
            self._commits.setdefault(ev.commit, set()).add(model)

    def _merge_events(self, models: set[str]) -> None:
        kept = [e for e in self.events if e.model not in models]
        for m in models:
            state = self.states.get(m)
            if state is not None:
                kept.extend(state.events[:RECENT_EVENTS])
        kept.sort(key=lambda e: (e.timestamp, e.priority, e.counter or 0), reverse=True)
        self.events = kept[:RECENT_EVENTS]

    # --- deriving rows ---------------------------------------------------------------------

    @property
    def environments(self) -> list[str]:
        """Configured environments, then any other stage a model is assigned to."""
        return self._environments

    def _collect_environments(self) -> None:
        envs = list(self.project.config.environments)
        seen = set(envs)
        for state in self.states.values():
            for stage in state.stages:
                if stage not in seen:
                    seen.add(stage)
                    envs.append(stage)
        self._environments = envs

    @property
    def deployments(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(m, e): d for m, by_env in self.deps.items() for e, d in by_env.items()}

    def in_env(self, env: str) -> list[str]:
        """The models deployed in ``env``."""
        return [m for m, by_env in self.deps.items() if env in by_env]

    def metrics_url(self, env: str) -> str | None:
        environment = self.project.config.environments.get(env)
        return getattr(environment, "metrics_url", None) if environment else None

    def _rederive(self, model: str) -> None:
        state = self.states.get(model)
        self.deps.pop(model, None)
        if state is None:
            self.rows.pop(model, None)
            if self.static_alerts.pop(model, None) or self.live_alerts.pop(model, None):
                self.alerts_version += 1
            return
        from mlopsctl.promotion import current_plan

        by_env: dict[str, dict[str, Any]] = {}
        for env in self.environments:
            plan = current_plan(state, model, env)
            if plan.live_version is None and not any(plan.slots.values()):
                continue
            by_env[env] = self._deployment(state, env, plan)
        if by_env:
            self.deps[model] = by_env
        static = [a for env, d in by_env.items() if d["live"]
                  for a in target_alerts(model, env, d["live"], d["_baseline"], None,
                                         self.project.config.performance_targets)]
        if static != self.static_alerts.get(model, []):
            self.alerts_version += 1
        self.static_alerts[model] = static
        self._live_alerts_for(model)
        self.rows[model] = self._row(state)

    def _deployment(self, state: reg.ModelState, env: str, plan: Any) -> dict[str, Any]:
        from mlopsctl.promotion import target_for

        holder = state.stages.get(env)
        data = holder.data if holder else {}
        entry = state.versions.get(plan.live_version or "")
        report = self.notes.report(entry.commit, env, state.name) if entry else None
        baseline = Baseline.of(report, data.get("validation"), self._policy_hash)
        try:
            target = target_for(self.project, env)
            actual = target.state(env, state.name)
            in_sync = actual.live_slot == plan.live_slot and all(
                actual.slots[s].version == v for s, v in plan.slots.items())
            healthy = all(actual.slots[s].healthy for s, v in plan.slots.items() if v)
            target_name = target.name
        except (MlopsError, OSError, KeyError) as exc:
            in_sync, healthy, target_name = False, False, f"error: {exc}"
        return {
            "model": state.name, "environment": env, "live": plan.live_version,
            "live_slot": plan.live_slot, "slots": dict(plan.slots),
            "since": holder.date_iso if holder else None,
            "by": data.get("actor") or (holder.author if holder else None),
            "event": holder.tag if holder else None, "rollback": bool(data.get("rollback")),
            "validation": {"status": baseline.status, "stale": baseline.stale,
                           "accuracy": baseline.accuracy,
                           "latency_p95_ms": baseline.latency_p95_ms,
                           "compliance": baseline.compliance,
                           "validated_at": baseline.validated_at},
            "target": target_name, "in_sync": in_sync, "healthy": healthy,
            "_baseline": baseline,
        }

    def _row(self, state: reg.ModelState) -> dict[str, Any]:
        latest = state.latest
        envs: dict[str, Any] = {}
        by_env = self.deps.get(state.name, {})
        for env, d in by_env.items():
            envs[env] = {"live": d["live"], "slot": d["live_slot"],
                         "rollback": d["rollback"], "since": d["since"]}
        last = state.events[0] if state.events else None
        deps = [d for d in by_env.values() if d["live"]]
        compliances = [d["validation"]["compliance"] for d in deps
                       if d["validation"]["compliance"] is not None]
        statuses = {d["environment"]: d["validation"]["status"] or "none" for d in deps}
        if latest is not None and not deps:
            for env in self.project.config.environments:
                report = self.notes.report(latest.commit, env, state.name)
                if report:
                    b = Baseline.of(report, None, self._policy_hash)
                    statuses[env] = b.status or "none"
                    if b.compliance is not None:
                        compliances.append(b.compliance)
        if not deps:
            health = "-"
        elif all(d["in_sync"] and d["healthy"] for d in deps):
            health = "ok"
        else:
            health = "out of sync"
        return {
            "model": state.name,
            "latest": latest.version if latest else None,
            "versions": len(state.active_versions),
            "deprecated": state.deprecated,
            "environments": envs,
            "last_event": None if last is None else {
                "event": event_name(last), "at": last.date_iso, "timestamp": last.timestamp,
                "version": last.version, "environment": last.stage, "tag": last.tag},
            "compliance": min(compliances) if compliances else None,
            "validation": statuses,
            "health": health,
        }

    # --- live metrics ----------------------------------------------------------------------

    def scrape(self) -> set[str]:
        """``ingest(fetch_live())``: scrape every endpoint and take the figures in."""
        return self.ingest(self.fetch_live())

    def fetch_live(self) -> dict[str, lm.Scrape]:
        """Scrape every configured endpoint: network only, no state touched, so a front end
        runs it off its UI thread without holding anything (short timeouts: a source that is
        down costs at most ``scrape_timeout``)."""
        urls = {env: url for env in self.environments if (url := self.metrics_url(env))}
        return {env: lm.scrape(url, self.scrape_timeout, self.clock)
                for env, url in urls.items()}

    def ingest(self, scrapes: dict[str, lm.Scrape]) -> set[str]:
        """Take scrapes in; returns the models whose live figures or alerts may have changed."""
        touched: set[str] = set()
        for env, result in scrapes.items():
            history = self.live.get(env)
            if history is None or history.url != result.url:
                history = self.live[env] = lm.LiveHistory(result.url)
            history.add(result)
            touched |= set(self.in_env(env))
        for model in touched:
            self._live_alerts_for(model)
        return touched

    def live_stats(self, model: str, env: str) -> lm.LiveStats | None:
        history = self.live.get(env)
        if history is None:
            return None
        dep = self.deps.get(model, {}).get(env)
        return history.stats(model, dep["live"] if dep else None)

    def _live_alerts_for(self, model: str) -> None:
        config = self.project.config
        alerts = []
        for env, d in self.deps.get(model, {}).items():
            if not d["live"] or env not in self.live:
                continue
            live = self.live_stats(model, env)
            base: Baseline = d["_baseline"]
            if live is not None and not live.up:
                alerts.append(Alert("critical", "source", "metrics_url",
                                    f"metrics source of {env} is down: {live.error}",
                                    model, env, d["live"]))
                continue
            alerts += degradation_alerts(model, env, d["live"], base, live,
                                         list(config.alerts.degradation))
            live_targets = target_alerts(model, env, d["live"], Baseline(), live,
                                         config.performance_targets)
            alerts += [a for a in live_targets if a.metric != "compliance"]
        if alerts != self.live_alerts.get(model, []):
            self.alerts_version += 1
        self.live_alerts[model] = alerts

    # --- alerts and actions ----------------------------------------------------------------

    def alerts(self, model: str | None = None) -> list[Alert]:
        models = [model] if model else list(self.rows)
        out: list[Alert] = []
        for m in models:
            live = self.live_alerts.get(m, [])
            covered = {(a.env, a.metric) for a in live}
            out += live + [a for a in self.static_alerts.get(m, [])
                           if (a.env, a.metric) not in covered]
        out += [Alert("critical", "rollback", "auto_rollback", r["message"], r["model"],
                      r["environment"]) for r in self.rollbacks
                if not r["ok"] and (model is None or r["model"] == model)]
        return sorted(out, key=lambda a: (-rank(a.level), a.model or "", a.env or "", a.metric))

    def auto_rollback(self, reporter: Reporter | None = None) -> list[dict[str, Any]]:
        """Roll back emergencies where the environment allows it; once per live version."""
        from mlopsctl.promotion import rollback

        done = []
        for alert in self.alerts():
            if alert.level != "emergency" or alert.kind != "degradation" or not alert.model \
                    or not alert.env or not alert.version:
                continue
            environment = self.project.config.environments.get(alert.env)
            if not getattr(environment, "auto_rollback", False):
                continue
            key = (alert.model, alert.env, alert.version)
            if key in self._rolled:
                continue
            self._rolled.add(key)
            record: dict[str, Any] = {"model": alert.model, "environment": alert.env,
                                      "from": alert.version, "at": _iso(self.clock())}
            try:
                result = rollback(self.project, alert.model, alert.env, None,
                                  f"auto-rollback: {alert.message}", reporter)
                record.update(ok=True, to=result.version, tag=result.tag,
                              message=f"rolled {alert.model} back in {alert.env}: "
                              f"{alert.version} -> {result.version} ({alert.metric})")
            except MlopsError as exc:
                record.update(ok=False, message=f"auto-rollback of {alert.model} in "
                              f"{alert.env} failed: {exc.message}")
            self.rollbacks.append(record)
            self.alerts_version += 1
            done.append(record)
        return done

    # --- documents -------------------------------------------------------------------------

    def row_alert_levels(self, model: str) -> list[str]:
        return [a.level for a in self.alerts(model)]

    def recent_events(self) -> list[dict[str, Any]]:
        """The audit log: the newest events across the registry."""
        now = self.clock()
        return [_event_doc(e, now) for e in self.events]

    def live_document(self) -> dict[str, Any]:
        """Per environment with an endpoint: up or down, and the newest figures per model."""
        live: dict[str, Any] = {}
        for env in self.environments:
            url = self.metrics_url(env)
            if not url:
                continue
            history = self.live.get(env)
            latest = history.latest if history else None
            entry: dict[str, Any] = {"url": url, "up": latest.up if latest else None,
                                     "error": latest.error if latest else None,
                                     "scraped_at": _iso(latest.at) if latest else None}
            if history is not None and history.points:
                _, stats = history.points[-1]
                entry["endpoint"] = stats[lm.ALL].to_json() if lm.ALL in stats else None
                entry["models"] = {m: s.to_json() for m, s in sorted(stats.items())
                                   if m != lm.ALL}
            live[env] = entry
        return live

    def document(self) -> dict[str, Any]:
        now = self.clock()
        config = self.project.config
        alerts = self.alerts()
        rows = []
        for name in sorted(self.rows):
            row = dict(self.rows[name])
            levels = [a.level for a in alerts if a.model == name]
            row["alerts"] = {lvl: levels.count(lvl) for lvl in LEVELS if lvl in levels}
            if row["last_event"]:
                row["last_event"] = dict(row["last_event"],
                                         age_s=int(now - row["last_event"]["timestamp"]))
            rows.append(row)
        live = self.live_document()
        counts = {lvl: sum(1 for a in alerts if a.level == lvl) for lvl in LEVELS}
        return {
            "schema_version": SCHEMA,
            "generated_at": _iso(now),
            "root": str(self.project.root),
            "policy_drift": self.policy_drift,
            "config_error": self.config_error,
            "environments": {
                env: {"target": e.target, "metrics_url": getattr(e, "metrics_url", None),
                      "auto_rollback": bool(getattr(e, "auto_rollback", False))}
                for env, e in config.environments.items()},
            "targets": config.performance_targets.model_dump(),
            "thresholds": dict(zip(LEVELS, sorted(config.alerts.degradation), strict=False)),
            "models": rows,
            "deployments": [{k: v for k, v in d.items() if not k.startswith("_")}
                            for _, d in sorted(self.deployments.items())],
            "live_metrics": live,
            "alerts": [a.to_json() for a in alerts],
            "rollbacks": list(self.rollbacks),
            "events": self.recent_events(),
            "summary": {"models": len(rows), "deployments": sum(map(len, self.deps.values())),
                        "alerts": counts, "worst": worst([a.level for a in alerts])},
        }


def _event_doc(event: reg.Event, now: float) -> dict[str, Any]:
    data = event.data
    return {"at": event.date_iso, "age_s": int(now - event.timestamp), "model": event.model,
            "event": event_name(event), "version": event.version, "environment": event.stage,
            "actor": data.get("actor") or event.author, "message": data.get("message") or
            event.title, "rollback": bool(data.get("rollback")), "tag": event.tag}


# --- the model screen ------------------------------------------------------------------------


def model_detail(monitor: Monitor, model: str) -> dict[str, Any]:
    """Versions (reported and recomputed metrics), lineage, latest report per environment and
    the events of one model. Reads the tagged manifests in one ``git cat-file --batch``."""
    state = monitor.states.get(model)
    if state is None:
        raise MlopsError(f"unknown model '{model}'", hint="mlopsctl show")
    project = monitor.project
    entries = sorted(state.versions.values(), key=lambda v: v.semver.sort_key())
    manifests = _manifests_at(project, model, entries)
    versions: list[dict[str, Any]] = []
    for entry in entries:
        manifest = manifests.get(entry.version)
        recomputed: dict[str, float] = {}
        reports: dict[str, Any] = {}
        for env in monitor.environments:
            report = monitor.notes.report(entry.commit, env, model)
            if report:
                reports[env] = report
                for k, v in (report.get("metrics") or {}).items():
                    if isinstance(v, dict) and _num(v.get("recomputed")) is not None:
                        recomputed.setdefault(k, float(v["recomputed"]))
        lineage = manifest.lineage if manifest else None
        versions.append({
            "version": entry.version, "commit": entry.commit,
            "created_at": entry.registration.date_iso, "author": entry.registration.author,
            "deregistered": entry.deregistered, "stages": state.stages_of(entry.version),
            "reported": dict(manifest.metrics) if manifest else {},
            "recomputed": recomputed,
            "parent": manifest.parent_version if manifest else None,
            "lineage": None if lineage is None else {
                "code_commit": lineage.code_commit, "code_dirty": lineage.code_dirty,
                "data": [{"path": d.path, "sha256": d.sha256} for d in lineage.data],
                "params": lineage.params},
            "reports": {env: {"status": r.get("status"), "passed": r.get("passed"),
                              "validated_at": r.get("validated_at"),
                              "compliance": (r.get("compliance") or {}).get("score"),
                              "rules": (r.get("compliance") or {}).get("rules", []),
                              "gates": r.get("gates", [])}
                        for env, r in reports.items()},
        })
    latest_reports: dict[str, Any] = {}
    for v in reversed(versions):
        for env, r in v["reports"].items():
            latest_reports.setdefault(env, dict(r, version=v["version"]))
    metric_names = sorted({k for v in versions for k in (*v["reported"], *v["recomputed"])})
    now = monitor.clock()
    return {
        "model": model, "latest": state.latest.version if state.latest else None,
        "stages": {s: e.version for s, e in sorted(state.stages.items())},
        "versions": versions,
        "metrics": metric_names,
        "latest_reports": latest_reports,
        "events": [_event_doc(e, now) for e in state.events],
        "deployments": [{k: v for k, v in d.items() if not k.startswith("_")}
                        for _, d in sorted(monitor.deps.get(model, {}).items())],
        "alerts": [a.to_json() for a in monitor.alerts(model)],
    }


def _manifests_at(project: Project, model: str, entries: list[reg.VersionEntry]
                  ) -> dict[str, mf.VersionManifest]:
    from mlopsctl.gitops.git import GitFailed, git

    specs = []
    for entry in entries:
        rel = project.ws.rel(project.ws.manifest_path(model, entry.number))
        specs.append((entry.version, f"{entry.commit}:{rel}"))
    if not specs:
        return {}
    try:
        out = git(project.root, "cat-file", "--batch-check=%(objectname)",
                  input=("\n".join(s for _, s in specs) + "\n").encode()).decode().splitlines()
    except GitFailed:
        return {}
    oids = {version: line.strip() for (version, _), line in zip(specs, out, strict=False)
            if "missing" not in line}
    objects = read_objects(project.root, project.ws.git_dir, oids.values())
    found: dict[str, mf.VersionManifest] = {}
    for version, oid in oids.items():
        if oid in objects:
            try:
                found[version] = mf.parse_yaml(objects[oid][1], mf.VersionManifest, version)
            except MlopsError:
                continue
    return found


# --- headless --------------------------------------------------------------------------------


def dashboard(project: Project, scrape: bool = True) -> dict[str, Any]:
    """The monitor's document, once: what ``mlopsctl monitor --once --json`` prints and the
    Python API's ``get_mlops_dashboard()`` returns."""
    monitor = Monitor(project)
    monitor.poll()
    if scrape:
        monitor.scrape()
    return monitor.document()


def stable(doc: dict[str, Any]) -> str:
    """The document without what changes by the clock alone (ages, times of scrapes), for
    telling a real change from the passing of time."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("generated_at", "age_s", "scraped_at", "at")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return json.dumps(strip(doc), sort_keys=True, default=str)


def watch(monitor: Monitor, interval: float = 1.0, scrape_every: float = 5.0,
          sleep: Callable[[float], None] = time.sleep,
          stop: Callable[[], bool] = lambda: False,
          auto_rollback: bool = True) -> Iterator[dict[str, Any]]:
    """Yield the document first, then again each time it changes (registry, config, live
    figures or alerts)."""
    last = ""
    next_scrape = 0.0
    while not stop():
        monitor.poll()
        if monitor.clock() >= next_scrape:
            monitor.scrape()
            next_scrape = monitor.clock() + scrape_every
        if auto_rollback and monitor.auto_rollback():
            monitor.poll()
        doc = monitor.document()
        key = stable(doc)
        if key != last:
            last = key
            yield doc
        sleep(interval)
