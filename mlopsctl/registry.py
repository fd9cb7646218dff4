"""The registry as GTO sees it, rebuilt from one ``git for-each-ref`` and one parse (pure).

Tags are the events; this module folds them into per-model state: registered versions, the
version each stage points at (its latest assignment), deprecation, and the ordered event list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlopsctl import semver
from mlopsctl.gitops import tags as T
from mlopsctl.gitops.refs import TagRecord, read_tags

# GTO orders events at the same timestamp by these priorities.
_PRIORITY = {
    T.CREATE: 1, T.DEPRECATE: 2, T.REGISTER: 3, T.DEREGISTER: 4, T.ASSIGN: 5, T.UNASSIGN: 6,
}
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
    def sort_key(self) -> tuple[int, int, int]:
        return (self.timestamp, _PRIORITY[self.kind], self.counter or 0)

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @cached_property
    def data(self) -> dict[str, Any]:
        """The structured YAML block mlopsctl writes after the first blank line (empty if none)."""
        _, sep, rest = self.message.partition("\n\n")
        if not sep or DATA_KEY not in rest:
            return {}
        import yaml

        try:
            loaded = yaml.load(rest, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            return {}
        if isinstance(loaded, dict) and isinstance(loaded.get(DATA_KEY), dict):
            return dict(loaded[DATA_KEY])
        return {}


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
    events: list[Event] = field(default_factory=list)
    versions: dict[str, VersionEntry] = field(default_factory=dict)  # by 'v1.2.3'
    stages: dict[str, Event] = field(default_factory=dict)  # stage -> latest assignment
    deprecated: bool = False

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
        return max((e.counter or 0 for e in self.events), default=0) + 1

    def version_at(self, commit: str) -> VersionEntry | None:
        for entry in self.versions.values():
            if entry.commit == commit and not entry.deregistered:
                return entry
        return None

    def stages_of(self, version: str) -> list[str]:
        return sorted(s for s, e in self.stages.items() if e.version == version)


@dataclass
class Registry:
    models: dict[str, ModelState]

    def model(self, name: str) -> ModelState | None:
        return self.models.get(name)

    @property
    def events(self) -> list[Event]:
        out = [e for m in self.models.values() for e in m.events]
        out.sort(key=lambda e: (*e.sort_key, e.model))
        return out


def build(records: list[TagRecord]) -> Registry:
    """Fold tag records into registry state, as GTO does."""
    models: dict[str, ModelState] = {}
    for rec in records:
        parsed = T.parse_tag(rec.name)
        if parsed is None:
            continue
        state = models.setdefault(parsed.model, ModelState(parsed.model))
        state.events.append(
            Event(
                kind=parsed.kind,
                model=parsed.model,
                tag=rec.name,
                commit=rec.commit,
                timestamp=rec.timestamp,
                date_iso=rec.date_iso,
                author=rec.tagger_name,
                author_email=rec.tagger_email,
                message=rec.message.rstrip("\n"),
                version=parsed.version,
                stage=parsed.stage,
                counter=parsed.counter,
            )
        )
    for state in models.values():
        _fold(state)
    return Registry(dict(sorted(models.items())))


def _fold(state: ModelState) -> None:
    state.events.sort(key=lambda e: e.sort_key)
    for event in state.events:
        if event.kind == T.REGISTER and event.version:
            state.versions[event.version] = VersionEntry(
                state.name, event.version, semver.parse(event.version), event.commit, event
            )
    for event in state.events:
        if event.kind == T.DEREGISTER and event.version in state.versions:
            state.versions[event.version].deregistered = True
        elif event.kind == T.DEPRECATE:
            state.deprecated = True
    for event in state.events:
        if event.kind in (T.ASSIGN, T.UNASSIGN) and event.stage:
            if event.kind == T.ASSIGN:
                entry = state.version_at(event.commit)
                event.version = entry.version if entry else event.commit
                state.stages[event.stage] = event
            else:
                state.stages.pop(event.stage, None)


def load(root: Path) -> Registry:
    return build(read_tags(root))
