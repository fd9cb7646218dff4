"""The registry as GTO sees it, rebuilt from one ``git for-each-ref`` and one parse (pure).

The fold follows GTO 1.10's read side step for step (see docs/design.md), because scripts and
gto-action read the same tags and must reach the same answers, down to same-second ties:

- tags are indexed in name order, then stably by tagger time;
- a version is identified by (model, commit); a stage tag on a commit with no version creates a
  placeholder version named by the commit's sha;
- "newest first" always means: stable sort by time ascending, then reverse the list;
- a stage is held by the most recent still-active assignment across active versions;
- a model is deprecated when its newest event (commit dates included) is a deprecation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlopsctl import semver
from mlopsctl.errors import EnvironmentProblem
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.refs import TagRecord, read_at_head, read_tags

# GTO orders events at the same timestamp by these priorities (commit events are 0).
_PRIORITY = {
    T.CREATE: 1, T.DEPRECATE: 2, T.REGISTER: 3, T.DEREGISTER: 4, T.ASSIGN: 5, T.UNASSIGN: 6,
}
COMMIT = "commit"
DATA_KEY = "mlopsctl"


@dataclass
class Event:
    kind: str
    model: str
    tag: str
    commit: str
    timestamp: int
    date_iso: str
    author: str
    author_email: str
    message: str
    version: str | None = None  # 'v1.2.3' as in the tag; for stage events, the version assigned
    stage: str | None = None
    counter: int | None = None

    @property
    def priority(self) -> int:
        return _PRIORITY.get(self.kind, 0)

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @cached_property
    def data(self) -> dict[str, Any]:
        """The structured YAML block mlopsctl writes after the first blank line (empty if none)."""
        _, sep, rest = self.message.partition("\n\n")
        return parse_event_data(rest) if sep else {}


def parse_event_data(block: str) -> dict[str, Any]:
    """The ``mlopsctl:`` mapping of a tag message's YAML block, or {} when there is none."""
    if DATA_KEY not in block:
        return {}
    import yaml

    try:
        loaded = yaml.load(block, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return {}
    if isinstance(loaded, dict) and isinstance(loaded.get(DATA_KEY), dict):
        return dict(loaded[DATA_KEY])
    return {}


def desc(events: list[Event]) -> list[Event]:
    """Newest first, GTO's way: stable ascending sort by time, then reverse (so among equal
    times the later-listed event comes first)."""
    return sorted(events, key=lambda e: e.timestamp)[::-1]


@dataclass
class _Version:
    """A version as GTO tracks it: one per (model, commit), or a placeholder."""

    model: str
    name: str  # 'v1.2.3', or the commit sha for a placeholder
    commit: str
    commit_event: Event
    regs: list[Event] = field(default_factory=list)
    deregs: list[Event] = field(default_factory=list)
    stages: dict[str, list[Event]] = field(default_factory=dict)

    @property
    def discovered(self) -> bool:
        return not self.regs and not self.deregs

    @property
    def active(self) -> bool:
        direct = desc(self.regs + self.deregs)
        return not direct or direct[0].kind == T.REGISTER

    def stage_events(self, stage: str) -> list[Event]:
        # GTO lists a stage's assignments before its unassignments, then sorts newest first:
        # a same-second assign and unassign leave the stage unassigned.
        events = self.stages[stage]
        return desc([e for e in events if e.kind == T.ASSIGN] +
                    [e for e in events if e.kind == T.UNASSIGN])

    def active_stages(self) -> list[tuple[str, Event]]:
        """(stage, latest assignment) for stages whose newest event is an assignment, oldest
        activation first."""
        out = []
        for stage in self.stages:
            events = self.stage_events(stage)
            if events[0].kind == T.ASSIGN:
                out.append((stage, events[0]))
        return sorted(out, key=lambda pair: pair[1].timestamp)

    def all_events(self) -> list[Event]:
        stage_events = [e for s in self.stages for e in self.stage_events(s)]
        return desc(self.regs + self.deregs + [self.commit_event] + stage_events)

    def authored_at(self) -> int:
        direct = desc(self.regs + self.deregs)
        regs = [e for e in direct if e.kind == T.REGISTER]
        if regs:
            return regs[0].timestamp
        stage_events = [e for s in self.stages for e in self.stage_events(s)]
        return desc([self.commit_event, *stage_events])[0].timestamp


@dataclass
class VersionEntry:
    model: str
    version: str  # 'v1.2.3'
    semver: semver.Version
    commit: str
    registration: Event
    deregistered: bool = False

    @property
    def number(self) -> str:
        return self.version[1:]


@dataclass
class ModelState:
    name: str
    events: list[Event] = field(default_factory=list)  # tag events, newest first
    versions: dict[str, VersionEntry] = field(default_factory=dict)  # registered, by 'v1.2.3'
    stages: dict[str, Event] = field(default_factory=dict)  # stage -> the holder's assignment
    deprecated: bool = False
    counters: list[int] = field(default_factory=list)  # from every tag, lightweight included
    registered: bool = True  # False for a model only declared in GTO's artifacts.yaml

    @property
    def active_versions(self) -> list[VersionEntry]:
        live = [v for v in self.versions.values() if not v.deregistered]
        return sorted(live, key=lambda v: v.semver.sort_key())

    @property
    def latest(self) -> VersionEntry | None:
        live = self.active_versions
        return live[-1] if live else None

    @property
    def next_counter(self) -> int:
        """GTO's counter for the next event: 1 + the highest counter of any of the model's tags."""
        return max(self.counters, default=0) + 1

    def stages_of(self, version: str) -> list[str]:
        return sorted(s for s, e in self.stages.items() if e.version == version)

    def assigned(self, env: str) -> list[str]:
        """Versions assigned to ``env``, oldest first (time, then GTO's counter)."""
        events = [e for e in self.events if e.kind == T.ASSIGN and e.stage == env and e.version]
        events.sort(key=lambda e: (e.timestamp, e.counter or 0))
        return [e.version for e in events if e.version]


@dataclass
class Registry:
    models: dict[str, ModelState]  # in GTO's order
    stage_names: list[str] = field(default_factory=list)
    history: list[Event] = field(default_factory=list)  # every tag event, newest first
    # Version tag names in use per model, lightweight and deregistered ones included: a new
    # registration must avoid all of them, since git refuses an existing tag name.
    taken: dict[str, set[str]] = field(default_factory=dict)

    def model(self, name: str) -> ModelState | None:
        return self.models.get(name)

    def taken_versions(self, name: str) -> set[str]:
        return self.taken.get(name, set())

    @property
    def events(self) -> list[Event]:
        return self.history


def _event(rec: TagRecord, parsed: T.TagEvent) -> Event:
    return Event(kind=parsed.kind, model=parsed.model, tag=rec.name, commit=rec.commit,
                 timestamp=rec.timestamp, date_iso=rec.date_iso, author=rec.tagger_name,
                 author_email=rec.tagger_email, message=rec.message.strip(),
                 version=parsed.version, stage=parsed.stage, counter=parsed.counter)


@dataclass(frozen=True)
class GtoFiles:
    """What GTO reads besides the tags: the ``stages:`` list of ``.gto`` (None when unset) and
    the artifacts declared in ``artifacts.yaml`` as committed at HEAD."""

    stages: list[str] | None = None
    declared: tuple[str, ...] = ()
    head: str = ""
    head_time: int = 0


def build(records: list[TagRecord], gto: GtoFiles | None = None) -> Registry:
    """Fold tag records into registry state, as GTO does (with its ``.gto`` stages and its
    ``artifacts.yaml`` when given)."""
    indexed: list[tuple[TagRecord, T.TagEvent]] = []
    counters: dict[str, list[int]] = {}
    taken: dict[str, set[str]] = {}
    for rec in sorted(records, key=lambda r: r.name):
        parsed = T.parse_tag(rec.name)
        if parsed is None:
            continue
        if parsed.counter is not None:
            counters.setdefault(parsed.model, []).append(parsed.counter)
        if parsed.version:
            taken.setdefault(parsed.model, set()).add(parsed.version)
        if rec.annotated and parsed.kind != T.CREATE:
            indexed.append((rec, parsed))
    indexed.sort(key=lambda pair: pair[0].timestamp)

    deprecations: dict[str, list[Event]] = {}
    versions: dict[str, list[_Version]] = {}
    order: list[str] = []

    def model_of(name: str) -> list[_Version]:
        if name not in versions:
            versions[name] = []
            deprecations.setdefault(name, [])
            order.append(name)
        return versions[name]

    for rec, parsed in indexed:  # pass 1: deprecations
        if parsed.kind == T.DEPRECATE:
            model_of(parsed.model)
            deprecations[parsed.model].append(_event(rec, parsed))
    for rec, parsed in indexed:  # pass 2: (de)registrations
        if parsed.kind in (T.REGISTER, T.DEREGISTER):
            found = _find(model_of(parsed.model), rec.commit, parsed.version)
            if found is None:
                found = _new_version(parsed.model, parsed.version or "", rec)
                versions[parsed.model].append(found)
            ev = _event(rec, parsed)
            (found.regs if parsed.kind == T.REGISTER else found.deregs).append(ev)
    for rec, parsed in indexed:  # pass 3: stage events
        if parsed.kind in (T.ASSIGN, T.UNASSIGN) and parsed.stage:
            found = _find(model_of(parsed.model), rec.commit)
            if found is None:  # a stage on a commit with no version: GTO names it by the sha
                found = _new_version(parsed.model, rec.commit, rec)
                versions[parsed.model].append(found)
            ev = _event(rec, parsed)
            ev.version = found.name
            found.stages.setdefault(parsed.stage, []).append(ev)
    if gto is not None and gto.head:  # declared artifacts: a version discovered at HEAD
        for name in gto.declared:
            candidates = model_of(name)
            if _find(candidates, gto.head) is None:
                head = TagRecord(gto.head, "", gto.head, "", "", 0, "", "",
                                 commit_time=gto.head_time)
                candidates.append(_new_version(name, gto.head, head))

    models = {name: _fold(name, deprecations[name], versions[name], counters.get(name, []))
              for name in order}
    stage_names = sorted({stage for vs in versions.values() for v in vs
                          if v.active and (v.regs or not v.deregs)
                          for stage, _ in v.active_stages()})
    if gto is not None and gto.stages is not None:  # GTO shows the configured stages only
        stage_names = list(gto.stages)
    rows = [e for m in models.values() for e in m.events]
    history = sorted(rows, key=lambda e: (e.timestamp, e.priority))[::-1]
    return Registry(models, stage_names, history, taken)


def _find(candidates: list[_Version], commit: str, name: str | None = None) -> _Version | None:
    """The version on ``commit`` (with that name, when given); placeholders never match."""
    for v in candidates:
        if v.commit == commit and not v.discovered and (name is None or v.name == name):
            return v
    return None


def _new_version(model: str, name: str, rec: TagRecord) -> _Version:
    commit_event = Event(COMMIT, model, rec.commit, rec.commit, rec.commit_time, "", "", "", "")
    return _Version(model, name, rec.commit, commit_event)


def _fold(name: str, deprecations: list[Event], versions: list[_Version],
          counters: list[int]) -> ModelState:
    state = ModelState(name, counters=counters)
    everything = desc(deprecations + [e for v in versions for e in v.all_events()])
    state.deprecated = not everything or everything[0].kind == T.DEPRECATE
    state.events = [e for e in everything if e.kind != COMMIT]
    state.registered = bool(state.events)
    for v in versions:
        if v.regs and semver.is_valid(v.name):
            latest_reg = desc(v.regs)[0]
            state.versions[v.name] = VersionEntry(name, v.name, semver.parse(v.name), v.commit,
                                                  latest_reg, deregistered=not v.active)
    # Stage holders: active versions (placeholders too), newest authored first; their active
    # stages newest first; the first seen per stage holds it.
    live = [v for v in versions if v.active and (v.regs or not v.deregs)]
    live = sorted(live, key=lambda v: v.authored_at())[::-1]
    candidates = [pair for v in live for pair in v.active_stages()]
    for stage, event in sorted(candidates, key=lambda pair: pair[1].timestamp)[::-1]:
        state.stages.setdefault(stage, event)
    return state


def load(root: Path, gto_files: bool = False) -> Registry:
    """The registry from the tags; with ``gto_files``, also from ``.gto`` and ``artifacts.yaml``
    as ``gto show`` reads them (one more git call)."""
    return build(read_tags(root), read_gto_files(root) if gto_files else None)


def read_gto_files(root: Path) -> GtoFiles:
    """GTO's ``.gto`` (from the work tree, as GTO reads it) and its index file (``INDEX:``,
    default ``artifacts.yaml``, as committed at HEAD). EnvironmentProblem when either is
    malformed: GTO refuses such a repository too."""
    import yaml

    config: dict[str, Any] = {}
    config_path = root / ".gto"
    if config_path.is_file():
        try:
            loaded = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise EnvironmentProblem(f".gto is not valid YAML: {exc}",
                                     hint="fix or remove .gto") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise EnvironmentProblem(".gto must be a YAML mapping", hint="fix or remove .gto")
        config = loaded or {}
    stages = config.get("stages")
    if stages is not None and not (isinstance(stages, list) and all(
            isinstance(s, str) and T.GTO_NAME_RE.fullmatch(s) for s in stages)):
        raise EnvironmentProblem(".gto: 'stages' must be a list of stage names",
                                 hint="e.g. stages: [dev, staging, prod]")
    index = config.get("INDEX", "artifacts.yaml")
    if not isinstance(index, str) or not index:
        raise EnvironmentProblem(".gto: 'INDEX' must be a file name", hint="fix or remove .gto")
    found = read_at_head(root, index)
    if found is None:  # no commit yet
        return GtoFiles(stages=stages)
    head, head_time, content = found
    return GtoFiles(stages=stages, declared=_declared(content, index), head=head,
                    head_time=head_time)


def _declared(content: bytes | None, source: str) -> tuple[str, ...]:
    """The artifact names of an ``artifacts.yaml`` (a mapping name -> description)."""
    if content is None:
        return ()
    import yaml

    try:
        loaded = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise EnvironmentProblem(f"{source} at HEAD is not valid YAML: {exc}",
                                 hint=f"fix {source} and commit it") from None
    if not isinstance(loaded, dict) or not all(  # GTO refuses an empty file or `nn:` too
            isinstance(k, str) and T.GTO_NAME_RE.fullmatch(k) and isinstance(v, dict)
            for k, v in loaded.items()):
        raise EnvironmentProblem(f"{source} at HEAD is not a mapping of artifact names",
                                 hint=f"fix {source} and commit it")
    return tuple(loaded)
