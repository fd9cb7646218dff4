"""``mlopsctl history``."""

from __future__ import annotations

from typing import Any

import click

from mlopsctl.cli import complete, console


@click.command("history")
@click.argument("model", required=False, shell_complete=complete.models)
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (the same fields as `gto history --json`), newest first.")
@click.option("--details", is_flag=True,
              help="Add each event's structured record (actor, previous version, slot, "
              "validation summary, rollback, hashes): under 'mlopsctl' with --json, as a "
              "'details' column otherwise.")
def command(model: str | None, as_json: bool, details: bool) -> None:
    """Show every event: registrations, promotions, rollbacks, deprecations — who, when, what,
    from which version, why, and the validation it relied on.

    \b
    Example:
      mlopsctl history
      mlopsctl history churn --details
      mlopsctl history churn --json --details
    """
    from mlopsctl import registry as reg
    from mlopsctl import views
    from mlopsctl.workspace import Workspace

    ws = Workspace.find()
    registry = reg.load(ws.root)
    console.warn_policy_drift(ws)
    if model is not None and registry.model(model) is None \
            and model not in reg.read_gto_files(ws.root).declared:  # declared: no events yet
        console.require_model(registry, model)
    events = registry.history if model is None else registry.history_of(model)
    if as_json:
        docs = [views.event_doc(e) for e in events]
        if details:
            for doc, event in zip(docs, events, strict=True):
                doc["mlopsctl"] = event.data or None
        console.emit_json(docs)
        return
    if not events:
        console.note("No events yet.")
        return
    columns = ["when", "model", "event", "version", "env", "from", "who", "why", "validation"]
    t = console.table(*columns, *(["details"] if details else []))
    rows = [(e.timestamp, e.priority, e.counter or 0, _semver_key(e.version),
             _row(e) + ([_details(e.data)] if details else [])) for e in events]
    if model is None:  # policy acceptances are registry-wide events
        rows += [(*key, row + ([""] if details else [])) for *key, row in _policy_rows(ws.root)]
    # Newest first, as --json and `gto history`; within one second, by GTO's priority, then
    # counter (the later event first).
    for *_, row in sorted(rows, key=lambda r: r[:4], reverse=True):
        t.add_row(*row)
    for col in t.columns[:6]:
        col.no_wrap = True
    if details:
        widest = max((len(line) for *_, row in rows for line in row[-1].splitlines()), default=0)
        t.columns[-1].overflow = "fold"
        t.columns[-1].min_width = min(widest, 64)
    console.out().print(t)


def _policy_rows(root: Any) -> list[tuple[Any, ...]]:
    from datetime import datetime

    from mlopsctl.policy_admin import acceptances

    rows = []
    for acc in acceptances(root):
        when = int(datetime.fromisoformat(acc["date"]).timestamp())
        rows.append((when, 0, 0, (), [
            acc["date"][:16].replace("T", " "), "-", "[magenta]policy accepted[/]", acc["hash"],
            "-", acc["previous"] or "-", acc["actor"].split(" <")[0],
            acc["message"] or "re-pinned the policy", ""]))
    return rows


# What the table's other columns already show of an event's record.
_SHOWN = {"event", "rollback", "previous_version", "parent_version", "validation", "message",
          "actor", "version", "environment", "schema_version"}


def _details(data: dict[str, Any]) -> str:
    """The rest of an event's structured record, as ``key=value`` lines."""
    import json

    parts = []
    for key, value in data.items():
        if key in _SHOWN or value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        parts.append(f"{key}={text}")
    validation = data.get("validation") or {}
    for key, value in sorted(validation.items()):
        if key != "compliance" and value not in (None, "", [], {}):
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            parts.append(f"validation.{key}={text}")
    return "\n".join(parts)  # one pair a line: the cell stays narrow


def _semver_key(version: str | None) -> tuple[object, ...]:
    from mlopsctl import semver

    if version and semver.is_valid(version):
        return semver.parse(version).sort_key()
    return ()


def _row(e: Any) -> list[str]:
    from mlopsctl.views import EVENT_NAMES

    data = e.data
    kind = data.get("event") or EVENT_NAMES[e.kind]
    if data.get("rollback"):
        kind = "[yellow]rollback[/]"
    prev = data.get("previous_version") or data.get("parent_version")
    validation = data.get("validation") or {}
    val = f"{validation['compliance']:.0%} compliant" if validation.get("compliance") is not None \
        else ""
    why = data.get("message") or e.title
    return [e.date_iso[:16].replace("T", " "), e.model, kind, e.version or "-", e.stage or "-",
            f"v{prev}" if prev else "-", data.get("actor", e.author).split(" <")[0], why, val]
