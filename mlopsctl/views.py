"""Registry state as JSON documents (pure). ``summary`` and ``history`` match ``gto show --json``
and ``gto history --json`` field for field, so scripts written for GTO read ours unchanged."""

from __future__ import annotations

from typing import Any

from mlopsctl import registry as reg
from mlopsctl.gitops import tags as T

# GTO's event names in history
EVENT_NAMES = {
    T.CREATE: "creation",
    T.DEPRECATE: "deprecation",
    T.REGISTER: "registration",
    T.DEREGISTER: "deregistration",
    T.ASSIGN: "assignment",
    T.UNASSIGN: "unassignment",
}


def summary(registry: reg.Registry, include_deprecated: bool = False) -> dict[str, Any]:
    """``gto show --json``: per model, the greatest active version and each stage's version.
    Deprecated models are left out unless asked for, as GTO does."""
    out: dict[str, Any] = {}
    for name in registry.models:  # summaries: no model is folded
        row = registry.summary(name)
        if row.deprecated and not include_deprecated:
            continue
        out[name] = {
            "version": row.latest,
            "stage": {s: row.stages.get(s) for s in registry.stage_names},
            "registered": row.registered,  # False: only declared in artifacts.yaml
            "active": not row.deprecated,
        }
    return out


def event_doc(event: reg.Event) -> dict[str, Any]:
    return {
        "timestamp": event.date_iso,
        "artifact": event.model,
        "event": EVENT_NAMES[event.kind],
        "priority": event.priority,
        "version": event.version,
        "stage": event.stage,
        "commit": event.commit,
        "author": event.author,
        "author_email": event.author_email,
        "message": event.message,
        "ref": event.tag,
    }


def history(registry: reg.Registry, model: str | None = None) -> list[dict[str, Any]]:
    """``gto history --json``: every event, newest first."""
    events = registry.history if model is None else registry.history_of(model)
    return [event_doc(e) for e in events]


def model_detail(state: reg.ModelState, manifests: dict[str, Any]) -> dict[str, Any]:
    """Our own document for ``show MODEL --json``: versions newest first, with manifests."""
    versions = []
    for entry in sorted(state.versions.values(), key=lambda v: v.semver.sort_key(), reverse=True):
        reg_event = entry.registration
        versions.append({
            "version": entry.version,
            "commit": entry.commit,
            "created_at": reg_event.date_iso,
            "author": reg_event.author,
            "author_email": reg_event.author_email,
            "stages": state.stages_of(entry.version),
            "registered": not entry.deregistered,
            "message": reg_event.title,
            "manifest": manifests.get(entry.version),
        })
    return {
        "model": state.name,
        "latest": state.latest.version if state.latest else None,
        "stages": {stage: ev.version for stage, ev in sorted(state.stages.items())},
        "deprecated": state.deprecated,
        "versions": versions,
    }
