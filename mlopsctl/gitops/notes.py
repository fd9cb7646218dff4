"""Reports attached to commits as git notes under ``refs/notes/mlops`` (one JSON document per
commit, merged by key so reports for several environments live side by side).

Teammates' reports arrive the way users fetch: ``init`` (and ``push``/``pull``) add the refspec
``+refs/notes/mlops*:refs/notes/remotes/<remote>/mlops*`` to each git remote, so a plain
``git fetch``/``git pull`` brings the team's notes into a tracking ref, as it does branches.
Reads merge the tracking refs into what this clone has (``merge_docs``: the later report under a
key wins); ``mlopsctl pull`` merges them for good, so the next push fast-forwards. A new note
starts from the fetched notes when they contain this clone's, so it can be pushed as it is.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from mlopsctl.gitops.git import GitFailed, git, git_ok
from mlopsctl.workspace import NOTES_REF

TRACKING_PREFIX = "refs/notes/remotes/"


def tracking_ref(remote: str) -> str:
    return f"{TRACKING_PREFIX}{remote}/mlops"


def fetch_refspec(remote: str) -> str:
    # A pattern, not the plain ref: `git fetch` fails outright when a plain refspec's source is
    # missing (a remote nobody has validated on yet); a pattern that matches nothing is fine.
    return f"+{NOTES_REF}*:{tracking_ref(remote)}*"


def configure_fetch(root: Path, remote: str) -> bool:
    """Make ``git fetch REMOTE`` bring the remote's notes into its tracking ref (a forced
    update of that ref only: this clone's own notes are never overwritten). Returns whether the
    refspec was added now; a no-op for a URL or an unknown remote."""
    try:
        if remote not in git(root, "remote").decode().split():
            return False
    except GitFailed:
        return False
    try:
        specs = git(root, "config", "--get-all", f"remote.{remote}.fetch").decode().split()
    except GitFailed:  # exit 1: no fetch refspec at all
        specs = []
    if fetch_refspec(remote) in specs:
        return False
    git(root, "config", "--add", f"remote.{remote}.fetch", fetch_refspec(remote))
    return True


def _tracking_refs(root: Path) -> list[str]:
    try:
        out = git(root, "for-each-ref", "--format=%(refname)", TRACKING_PREFIX).decode()
    except GitFailed:
        return []
    return [ref for ref in out.split() if ref.endswith("/mlops")]


def has_reports(root: Path) -> bool:
    """Whether this clone holds any notes (its own or a teammate's, fetched)."""
    return git_ok(root, "rev-parse", "-q", "--verify", NOTES_REF) or bool(_tracking_refs(root))


def missing_reports_hint(root: Path) -> str:
    """A sentence for commands that found no report, when this clone may simply lack the
    team's (a fresh clone has no notes until they are fetched); '' otherwise."""
    if has_reports(root):
        return ""
    try:
        remotes = git(root, "remote").decode().split()
    except GitFailed:
        remotes = []
    if not remotes:
        return ""
    return ("this clone has no validation reports yet: `mlopsctl pull` fetches the team's "
            "(and sets up `git fetch` to bring them from then on)")


def _read(root: Path, ref: str, commit: str) -> dict[str, Any]:
    try:
        text = git(root, "notes", f"--ref={ref}", "show", commit)
    except GitFailed:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read_local_note(root: Path, commit: str) -> dict[str, Any]:
    """This clone's own note on ``commit`` (what ``merge_note`` updates)."""
    return _read(root, NOTES_REF, commit)


def read_note(root: Path, commit: str) -> dict[str, Any]:
    """The note on ``commit``: this clone's, merged with the teammates' fetched ones."""
    doc = read_local_note(root, commit)
    for ref in _tracking_refs(root):
        theirs = _read(root, ref, commit)
        if theirs:
            doc = merge_docs(doc, theirs) if doc else theirs
    return doc


def _catch_up(root: Path) -> None:
    """Fast-forward this clone's notes to fetched ones that contain them (or start from the
    fetched ones when it has none), so a new note builds on the team's and the next push is a
    fast-forward rather than a refusal. Diverged notes are left for `mlopsctl pull` to merge."""
    fetched = _tracking_refs(root)
    if len(fetched) != 1:
        return  # several remotes: merging is pull's job
    try:
        local = git(root, "rev-parse", "-q", "--verify", NOTES_REF).decode().strip()
    except GitFailed:
        local = ""
    tip = git(root, "rev-parse", fetched[0]).decode().strip()
    if local == tip or (local and not git_ok(root, "merge-base", "--is-ancestor", local, tip)):
        return
    git(root, "update-ref", NOTES_REF, tip, local)


def merge_note(root: Path, commit: str, section: str, key: str, value: Any) -> None:
    """Set ``note[section][key] = value`` on ``commit`` (callers hold the repository lock)."""
    _catch_up(root)
    doc = read_local_note(root, commit)
    doc.setdefault("schema_version", 1)
    doc.setdefault(section, {})[key] = value
    body = json.dumps(doc, indent=2, sort_keys=True).encode()
    git(root, "notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "-", commit, input=body)


# --- merging two notes documents (pure) -------------------------------------------------------


def _stamp(value: Any) -> datetime | None:
    """When a report was made: its ``validated_at``, else its first other ``*_at`` field."""
    if not isinstance(value, dict):
        return None
    others = sorted(k for k in value if k.endswith("_at") and k != "validated_at")
    for key in ("validated_at", *others):
        raw = value.get(key)
        if isinstance(raw, str):
            try:
                parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                continue
            if parsed.tzinfo is None:
                continue
            return parsed
    return None


def _later(theirs: Any, ours: Any) -> bool:
    """Whether ``theirs`` should replace ``ours`` under the same key: the later report wins;
    on a tie (or without stamps) a canonical order decides, so every clone agrees."""
    t, o = _stamp(theirs), _stamp(ours)
    if t is not None and o is not None and t != o:
        return t > o
    if (t is None) != (o is None):
        return t is not None
    return _canonical(theirs) > _canonical(ours)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def merge_docs(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Merge two notes documents ``{"schema_version": 1, "validations": {"staging": {...}}}``:
    section by section, key by key; where both hold a different report under one key, the later
    one wins (see ``_later``). Pure."""
    merged = dict(ours)
    for name, section in theirs.items():
        if name not in merged:
            merged[name] = section
            continue
        mine = merged[name]
        if mine == section:
            continue
        if name == "schema_version":
            if isinstance(mine, int) and isinstance(section, int):
                merged[name] = max(mine, section)
            continue
        if isinstance(mine, dict) and isinstance(section, dict):
            combined = dict(mine)
            for key, report in section.items():
                if key not in combined or (combined[key] != report
                                           and _later(report, combined[key])):
                    combined[key] = report
            merged[name] = combined
        elif _later(section, mine):
            merged[name] = section
    return merged
