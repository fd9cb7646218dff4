"""The registry as GTO sees it, folded from the tags (pure), model by model.

The fold follows GTO 1.10's read side step for step (see docs/design.md), because scripts and
gto-action read the same tags and must reach the same answers, down to same-second ties:

- tags are indexed in name order, then stably by tagger time;
- a version is identified by (model, commit); a stage tag on a commit with no version creates a
  placeholder version named by the commit's sha;
- "newest first" always means: stable sort by time ascending, then reverse the list;
- a stage is held by the most recent still-active assignment across active versions;
- a model is deprecated when its newest event (commit dates included) is a deprecation.

Each model's state depends on its own tags alone (``fold``); what spans models is only their
order (where each first appears in GTO's passes: deprecations, then registrations, then stage
events), the stage names in use, and the merged history. So ``load`` folds a model only when a
command asks for it, from the tag index (``gitops.tagindex``), which also keeps each model's
``Summary``: ``show`` lists a thousand models without folding one.
"""

from __future__ import annotations

import functools
import marshal
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl import __version__, semver
from mlopsctl.errors import EnvironmentProblem
from mlopsctl.gcpause import paused_gc
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.refs import TagRecord, iso_date, read_at_head, read_tags
from mlopsctl.gitops.tagindex import TagIndex
from mlopsctl.workspace import Workspace

# GTO orders events at the same timestamp by these priorities (commit events are 0).
_PRIORITY = {
    T.CREATE: 1, T.DEPRECATE: 2, T.REGISTER: 3, T.DEREGISTER: 4, T.ASSIGN: 5, T.UNASSIGN: 6,
}
COMMIT = "commit"
DATA_KEY = "mlopsctl"
# The fold's own version (with the release's): sections kept in the tag index by another fold
# are made anew.
FOLD_VERSION = "2"
# Where a model first appears in GTO's passes over its events.
_PASS = {T.DEPRECATE: 1, T.REGISTER: 2, T.DEREGISTER: 2, T.ASSIGN: 3, T.UNASSIGN: 3}
_DECLARED = 4  # declared in artifacts.yaml only: after every model with events


@dataclass(slots=True)
class Event:
    kind: str
    model: str
    tag: str
    commit: str
    timestamp: int
    tz: str  # the tagger's offset, '+0200'
    author: str
    author_email: str
    message: str
    version: str | None = None  # 'v1.2.3' as in the tag; for stage events, the version assigned
    stage: str | None = None
    counter: int | None = None
    _data: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def date_iso(self) -> str:
        return iso_date(self.timestamp, self.tz)

    @property
    def priority(self) -> int:
        return _PRIORITY.get(self.kind, 0)

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @property
    def data(self) -> dict[str, Any]:
        """The structured YAML block mlopsctl writes after the first blank line (empty if none)."""
        if self._data is None:
            _, sep, rest = self.message.partition("\n\n")
            self._data = parse_event_data(rest) if sep else {}
        return self._data


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


def _time(event: Event) -> int:
    return event.timestamp


def _when(event: Event) -> tuple[int, int]:
    return (event.timestamp, event.priority)


def desc(events: list[Event]) -> list[Event]:
    """Newest first, GTO's way: stable ascending sort by time, then reverse (so among equal
    times the later-listed event comes first)."""
    return sorted(events, key=_time)[::-1]


class _Version:
    """A version as GTO tracks it: one per (model, commit), or a placeholder."""

    __slots__ = ("commit", "commit_time", "deregs", "model", "name", "regs", "stages")

    def __init__(self, model: str, name: str, commit: str, commit_time: int) -> None:
        self.model = model
        self.name = name  # 'v1.2.3', or the commit sha for a placeholder
        self.commit = commit
        self.commit_time = commit_time
        self.regs: list[Event] = []
        self.deregs: list[Event] = []
        self.stages: dict[str, list[Event]] = {}

    @property
    def commit_event(self) -> Event:
        return Event(COMMIT, self.model, self.commit, self.commit, self.commit_time, "", "", "",
                     "")

    @property
    def discovered(self) -> bool:
        return not self.regs and not self.deregs

    @property
    def active(self) -> bool:
        if not self.deregs:
            return True
        return desc(self.regs + self.deregs)[0].kind == T.REGISTER

    def stage_events(self, stage: str) -> list[Event]:
        # GTO lists a stage's assignments before its unassignments, then sorts newest first:
        # a same-second assign and unassign leave the stage unassigned.
        events = self.stages[stage]
        if len(events) == 1:
            return events
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
        return sorted(out, key=lambda pair: pair[1].timestamp) if len(out) > 1 else out

    def all_events(self, with_commit: bool = True) -> list[Event]:
        """Newest first; the commit's own event (dated by the commit) only when asked for:
        leaving it out changes no other event's place (the sort is stable)."""
        events = self.regs + self.deregs
        if with_commit:
            events.append(self.commit_event)
        for stage in self.stages:
            events += self.stage_events(stage)
        return desc(events) if len(events) > 1 else events

    def authored_at(self) -> int:
        if self.regs:
            return max(e.timestamp for e in self.regs)
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


@dataclass(frozen=True)
class Summary:
    """What listing a model needs, kept in the tag index so ``show`` folds nothing."""

    order: tuple[Any, ...] | None  # where GTO's passes first meet the model; None: never
    latest: str | None  # the greatest active version
    stages: dict[str, str | None]  # stage -> the version holding it
    registered: bool
    deprecated: bool

    def to_data(self) -> tuple[Any, ...]:
        return (self.order, self.latest, self.stages, self.registered, self.deprecated)

    @classmethod
    def from_data(cls, data: Any) -> Summary:
        order, latest, stages, registered, deprecated = data
        return cls(tuple(order) if order is not None else None, latest, dict(stages),
                   bool(registered), bool(deprecated))


@dataclass
class ModelState:
    name: str
    events: list[Event] = field(default_factory=list)  # tag events, newest first
    versions: dict[str, VersionEntry] = field(default_factory=dict)  # registered, by 'v1.2.3'
    stages: dict[str, Event] = field(default_factory=dict)  # stage -> the holder's assignment
    deprecated: bool = False
    counters: list[int] = field(default_factory=list)  # from every tag, lightweight included
    registered: bool = True  # False for a model only declared in GTO's artifacts.yaml
    # Version tag names in use, lightweight and deregistered ones included: a new registration
    # must avoid all of them, since git refuses an existing tag name.
    taken: set[str] = field(default_factory=set)
    order: tuple[Any, ...] | None = None  # see Summary.order

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

    def summary(self) -> Summary:
        latest = self.latest
        return Summary(self.order, latest.version if latest else None,
                       {s: e.version for s, e in self.stages.items()}, self.registered,
                       self.deprecated)


@dataclass(frozen=True)
class GtoFiles:
    """What GTO reads besides the tags: the ``stages:`` list of ``.gto`` (None when unset) and
    the artifacts declared in ``artifacts.yaml`` as committed at HEAD."""

    stages: list[str] | None = None
    declared: tuple[str, ...] = ()
    head: str = ""
    head_time: int = 0


# --- one model ----------------------------------------------------------------------------------


def _event(rec: TagRecord, parsed: T.TagEvent) -> Event:
    return Event(parsed.kind, parsed.model, rec.name, rec.commit, rec.timestamp, rec.tz,
                 rec.tagger_name, rec.tagger_email, rec.message.strip(), parsed.version,
                 parsed.stage, parsed.counter)


def _pair_name(pair: tuple[TagRecord, T.TagEvent]) -> str:
    return pair[0].name


def fold(name: str, records: Iterable[TagRecord], gto: GtoFiles | None = None) -> ModelState:
    """One model's state from its own tags (others' are skipped), and from ``artifacts.yaml``
    when it declares the model."""
    pairs = [(rec, parsed) for rec in records
             if (parsed := T.parse_tag(rec.name)) is not None and parsed.model == name]
    return _fold_parsed(name, pairs, gto)


def _fold_parsed(name: str, pairs: list[tuple[TagRecord, T.TagEvent]],
                 gto: GtoFiles | None) -> ModelState:
    with paused_gc():
        return _fold_pairs(name, pairs, gto)


def _by_time(pair: tuple[TagRecord, T.TagEvent]) -> int:
    return pair[0].timestamp


def _fold_pairs(name: str, pairs: list[tuple[TagRecord, T.TagEvent]],
                gto: GtoFiles | None) -> ModelState:
    counters: list[int] = []
    taken: set[str] = set()
    # GTO indexes the tags in name order, then stably by time, and passes over that index
    # three times: deprecations, (de)registrations, stage events. Bucketing first and sorting
    # each bucket stably by time gives each pass the same sequence.
    passes: tuple[list[tuple[TagRecord, T.TagEvent]], ...] = ([], [], [])
    for rec, parsed in sorted(pairs, key=_pair_name):
        if parsed.counter is not None:
            counters.append(parsed.counter)
        if parsed.version:
            taken.add(parsed.version)
        if rec.annotated:
            step = _PASS.get(parsed.kind)
            if step is not None and (step != 3 or parsed.stage):
                passes[step - 1].append((rec, parsed))
    for bucket in passes:
        bucket.sort(key=_by_time)
    order: tuple[Any, ...] | None = None
    for step, bucket in enumerate(passes, start=1):
        if bucket:
            order = (step, bucket[0][0].timestamp, bucket[0][0].name)
            break

    deprecations = [_event(rec, parsed) for rec, parsed in passes[0]]
    versions: list[_Version] = []
    on_commit: dict[str, list[_Version]] = {}  # in creation order, as GTO searches them

    def new_version(version: str, commit: str, commit_time: int) -> _Version:
        found = _Version(name, version, commit, commit_time)
        versions.append(found)
        on_commit.setdefault(commit, []).append(found)
        return found

    def find(commit: str, version: str | None = None) -> _Version | None:
        """The version on ``commit`` (with that name, when given); placeholders never match."""
        for v in on_commit.get(commit, ()):
            if (v.regs or v.deregs) and (version is None or v.name == version):
                return v
        return None

    for rec, parsed in passes[1]:
        found = find(rec.commit, parsed.version)
        if found is None:
            found = new_version(parsed.version or "", rec.commit, rec.commit_time)
        (found.regs if parsed.kind == T.REGISTER else found.deregs).append(_event(rec, parsed))
    for rec, parsed in passes[2]:
        found = find(rec.commit)
        if found is None:  # a stage on a commit with no version: GTO names it by the sha
            found = new_version(rec.commit, rec.commit, rec.commit_time)
        ev = _event(rec, parsed)
        ev.version = found.name
        found.stages.setdefault(parsed.stage or "", []).append(ev)
    if gto is not None and gto.head and name in gto.declared:  # a version discovered at HEAD
        if order is None:
            order = (_DECLARED, gto.declared.index(name), "")
        if find(gto.head) is None:
            new_version(gto.head, gto.head, gto.head_time)
    state = _fold(name, deprecations, versions, counters)
    state.taken = taken
    state.order = order
    return state


def _fold(name: str, deprecations: list[Event], versions: list[_Version],
          counters: list[int]) -> ModelState:
    state = ModelState(name, counters=counters)
    # Commits' own events only matter against a deprecation (is the newest event one?).
    everything = desc(deprecations + [e for v in versions
                                      for e in v.all_events(with_commit=bool(deprecations))])
    if deprecations:
        state.deprecated = everything[0].kind == T.DEPRECATE
        state.events = [e for e in everything if e.kind != COMMIT]
    else:  # every version has a commit event: the model is deprecated only when it has none
        state.deprecated = not versions
        state.events = everything
    state.registered = bool(state.events)
    for v in versions:
        if v.regs and (parsed := _semver(v.name)) is not None:
            latest_reg = desc(v.regs)[0] if len(v.regs) > 1 else v.regs[0]
            state.versions[v.name] = VersionEntry(name, v.name, parsed, v.commit, latest_reg,
                                                  deregistered=not v.active)
    # Stage holders: active versions (placeholders too), newest authored first; their active
    # stages newest first; the first seen per stage holds it.
    live = [v for v in versions if v.stages and v.active and (v.regs or not v.deregs)]
    if live:
        live = sorted(live, key=lambda v: v.authored_at())[::-1]
        candidates = [pair for v in live for pair in v.active_stages()]
        for stage, event in sorted(candidates, key=lambda pair: pair[1].timestamp)[::-1]:
            state.stages.setdefault(stage, event)
    return state


@functools.lru_cache(maxsize=8192)
def _semver(text: str) -> semver.Version | None:
    """Version tags repeat across models (every model has a v0.1.0): parse each once."""
    return semver.parse(text) if semver.is_valid(text) else None


# --- the whole registry -------------------------------------------------------------------------


class _Models(Mapping[str, ModelState]):
    """The models in GTO's order, each folded when first looked at."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getitem__(self, name: str) -> ModelState:
        state = self._registry.model(name)
        if state is None:
            raise KeyError(name)
        return state

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.names)

    def __len__(self) -> int:
        return len(self._registry.names)

    def __contains__(self, name: object) -> bool:
        return name in self._registry._listed


class Registry:
    """Every model, in GTO's order. Names, summaries and stage names come without folding;
    ``model(name)`` folds one model (once), ``history`` all of them."""

    def __init__(self, summaries: Mapping[str, Summary],
                 state_of: Callable[[str], ModelState], gto: GtoFiles | None = None) -> None:
        self._state_of = state_of
        self._states: dict[str, ModelState] = {}
        self._summaries = dict(summaries)
        self.gto = gto
        if gto is not None and gto.head:  # declared models: folded with HEAD's commit
            for name in gto.declared:
                self._summaries[name] = self._fold(name).summary()
        listed = [(s.order, n) for n, s in self._summaries.items() if s.order is not None]
        self.names = [n for _, n in sorted(listed)]
        self._listed = set(self.names)
        self.models: Mapping[str, ModelState] = _Models(self)
        if gto is not None and gto.stages is not None:  # GTO shows the configured stages only
            self.stage_names = list(gto.stages)
        else:
            # every stage active on a live version has a holder: the holders' stages are all
            self.stage_names = sorted({s for n in self.names for s in self._summaries[n].stages})
        self._history: list[Event] | None = None

    def _fold(self, name: str) -> ModelState:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = self._state_of(name)
        return state

    def model(self, name: str) -> ModelState | None:
        return self._fold(name) if name in self._listed else None

    def summary(self, name: str) -> Summary:
        return self._summaries[name]

    def taken_versions(self, name: str) -> set[str]:
        return self._fold(name).taken if name in self._summaries else set()

    @property
    def history(self) -> list[Event]:
        """Every tag event, newest first (GTO's order, same-second ties included)."""
        if self._history is None:
            with paused_gc():
                rows = [e for n in self.names for e in self._fold(n).events]
                self._history = sorted(rows, key=_when)[::-1]
        return self._history

    def history_of(self, name: str) -> list[Event]:
        """One model's part of ``history``, in the same order, folding that model alone (the
        sort is stable, so a model's events keep their relative order in the whole)."""
        state = self.model(name)
        return sorted(state.events, key=_when)[::-1] if state else []

    @property
    def events(self) -> list[Event]:
        return self.history


def build(records: Iterable[TagRecord], gto: GtoFiles | None = None) -> Registry:
    """Fold tag records into registry state, as GTO does (with its ``.gto`` stages and its
    ``artifacts.yaml`` when given)."""
    groups: dict[str, list[tuple[TagRecord, T.TagEvent]]] = {}
    with paused_gc():
        for rec in records:
            parsed = T.parse_tag(rec.name)
            if parsed is not None:
                groups.setdefault(parsed.model, []).append((rec, parsed))
        states = {name: _fold_parsed(name, pairs, gto) for name, pairs in groups.items()}

    def state_of(name: str) -> ModelState:
        found = states.get(name)
        return found if found is not None else fold(name, (), gto)

    return Registry({n: s.summary() for n, s in states.items()}, state_of, gto)


class _Sections:
    """How the tag index keeps a model: as folded. Its events newest first (a stage event with
    its ``mlopsctl:`` block already parsed), its versions and stage holders by their event's
    place, the tags that are no events (lightweight, ``@created``), and the scalars; so reading
    a model costs building its objects, not folding it again. Beside it, in the index's
    header, its ``Summary``."""

    version = f"{FOLD_VERSION}:{__version__}"  # another release may fold differently

    def pack(self, name: str, pairs: list[tuple[TagRecord, T.TagEvent]]
             ) -> tuple[bytes, tuple[Any, ...]]:
        state = _fold_parsed(name, pairs, None)
        place = {id(e): i for i, e in enumerate(state.events)}
        made = {rec.name: (rec.tag_sha, rec.commit_time) for rec, _ in pairs}
        events = [(e.kind, e.tag, e.commit, e.timestamp, e.tz, e.author, e.author_email,
                   e.message, e.version, e.stage, e.counter, *made[e.tag],
                   e.data if e.kind in (T.ASSIGN, T.UNASSIGN) else None)
                  for e in state.events]
        others = [tuple(rec) for rec, parsed in pairs
                  if not rec.annotated or parsed.kind == T.CREATE]
        versions = [(v.version, v.commit, place[id(v.registration)], v.deregistered)
                    for v in state.versions.values()]
        stages = {stage: place[id(e)] for stage, e in state.stages.items()}
        data = [events, others, versions, stages, state.deprecated, state.counters,
                state.registered, sorted(state.taken), state.order]
        try:
            raw = marshal.dumps(data)
        except ValueError:  # a block YAML read as something marshal cannot keep (a date):
            data[0] = [(*e[:-1], None) for e in events]  # parse it when asked instead
            raw = marshal.dumps(data)
        return raw, state.summary().to_data()

    def records(self, section: bytes) -> list[TagRecord]:
        events, others = marshal.loads(section)[:2]
        out = [TagRecord(e[1], e[11], e[2], e[5], e[6], e[3], e[4], e[7], e[12]) for e in events]
        return out + [TagRecord._make(t) for t in others]

    @staticmethod
    def state(name: str, section: bytes) -> ModelState:
        (events_data, _, versions_data, stages_data, deprecated, counters, registered, taken,
         order) = marshal.loads(section)
        events = [Event(e[0], name, e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9], e[10],
                        e[13]) for e in events_data]
        versions = {}
        for version, commit, at, deregistered in versions_data:
            parsed = _semver(version)
            if parsed is not None:
                versions[version] = VersionEntry(name, version, parsed, commit, events[at],
                                                 deregistered)
        return ModelState(name, events, versions, {s: events[i] for s, i in stages_data.items()},
                          deprecated, counters, registered, set(taken),
                          tuple(order) if order is not None else None)


SECTIONS = _Sections()


def open_index(root: Path) -> TagIndex:
    return TagIndex.open(root, Workspace(root).git_dir, SECTIONS)


def load(root: Path, gto_files: bool = False, index: TagIndex | None = None) -> Registry:
    """The registry from the tags (through the tag ``index``, opened here unless given); with
    ``gto_files``, also from ``.gto`` and ``artifacts.yaml`` as ``gto show`` reads them (one
    more git call)."""
    gto = read_gto_files(root) if gto_files else None
    index = index if index is not None else open_index(root)
    summaries = {name: Summary.from_data(data) for name, data in index.summaries().items()}
    declared = set(gto.declared) if gto is not None and gto.head else set()

    def state_of(name: str) -> ModelState:
        if name in declared:  # HEAD's artifacts.yaml adds to the tags: fold them again
            return fold(name, index.records(name), gto)
        section = index.section(name)
        return SECTIONS.state(name, section) if section else fold(name, (), gto)

    return Registry(summaries, state_of, gto)


def indexed_records(root: Path) -> list[TagRecord]:
    """Every registry tag's record, through the tag index (what a long-running reader such as
    the monitor starts from)."""
    index = open_index(root)
    return [rec for model in index.summaries() for rec in index.records(model)]


def load_uncached(root: Path, gto_files: bool = False) -> Registry:
    """The registry from one ``git for-each-ref``, bypassing the tag index: for the checks
    that must not depend on anything but the refs themselves."""
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
